//! A Python pickle reader (protocols 0–5, the opcodes `torch.save` and plain
//! Python data use) that builds data and nothing else.
//!
//! Written by hand: `serde-pickle` (and its fork `pickled`) have no hook for
//! persistent ids, which is how `torch.save` refers to tensor storages, and
//! refuse objects of unknown classes; candle's pickle reader lives inside
//! `candle-core` (a whole tensor framework) and is not published on its own.
//!
//! Nothing is ever imported, resolved or called. A global (`GLOBAL`,
//! `STACK_GLOBAL`) becomes an inert [`Value::Global`] marker; calling it
//! (`REDUCE`, `NEWOBJ`, `INST`, `OBJ`) records the call as a
//! [`Value::Object`] — class name, arguments and the state `BUILD` gives it —
//! so a dataclass such as `configs.llm_config.LLMConfig` reads as its field
//! dictionary. The one exception is `collections.OrderedDict()`, which is a
//! plain dict here. What a recorded call means (a tensor, a config) is decided
//! by the caller. Globals of modules that exist to run code (`os.system`,
//! `builtins.eval`, `subprocess`, …) are refused with [`PickleError::CodeGlobal`]
//! so that a booby-trapped file gets a clear message instead of a quiet read.
//!
//! Values live in an arena while the opcodes run, so the memo shares them as
//! Python does (a dict put in the memo and filled later is the filled dict
//! when fetched) and nothing is copied; the result is then unfolded into a
//! tree under a depth cap (cycles end there) and a size cap (a small pickle
//! that fetches one big list many times cannot blow up memory).

use std::collections::HashMap;

/// Deepest nesting unfolded into the result (a cycle reaches it too).
pub const MAX_DEPTH: usize = 256;
/// Most values in the unfolded result.
pub const MAX_VALUES: usize = 8_000_000;
/// Most values unfolded beyond the arena's own size, i.e. from sharing (a
/// memo entry or a DUP fetched again): a checkpoint shares little (storages,
/// a few objects), while a 1 KB pickle that DUPs one tuple into every slot
/// would otherwise unfold to [`MAX_VALUES`] (1.4 GB, 18 s; found by the fuzzer).
pub const MAX_SHARED: usize = 250_000;
/// Longest string or byte string.
pub const MAX_STRING: u64 = 64 << 20;
/// Most memo entries.
pub const MAX_MEMO: usize = 4_000_000;

/// A pickled value, as data.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64`, as its decimal text when it is small
    /// enough to print, else as a note of its size.
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Key-value pairs in insertion order (keys need not be strings).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// A reference to `module.name`, never resolved.
    Global {
        module: String,
        name: String,
    },
    /// A recorded call `module.name(*args)` that was never made, with the
    /// state `BUILD` set on it and the items `SETITEM(S)` gave it.
    Object {
        module: String,
        name: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
        items: Vec<(Value, Value)>,
    },
    /// `persistent_load(pid)` in Python: what the pid refers to is the caller's business.
    PersistentId(Box<Value>),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one (bools count, as in Python).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The entries of a dict, or of a recorded object's items.
    pub fn dict_items(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(items) => Some(items),
            _ => None,
        }
    }

    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.dict_items()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The elements of a tuple or list.
    pub fn elements(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// A short description for messages (`a dict of 3 entries`, `the global os.system`).
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the integer {i}"),
            Value::BigInt(s) => format!("the integer {s}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) => format!("the string {:?}", truncate(s, 60)),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::List(v) => format!("a list of {} elements", v.len()),
            Value::Tuple(v) => format!("a tuple of {} elements", v.len()),
            Value::Dict(v) => format!("a dict of {} entries", v.len()),
            Value::Set(v) => format!("a set of {} elements", v.len()),
            Value::Global { module, name } => format!("the global {module}.{name}"),
            Value::Object { module, name, .. } => format!("an object of class {module}.{name}"),
            Value::PersistentId(_) => "a persistent id".into(),
        }
    }

    /// The value as JSON data: objects of unknown classes become their
    /// fields (the `BUILD` state, else their arguments), globals their dotted
    /// name, bytes their length. For configs and metrics; never for tensors.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::None => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::BigInt(s) => J::String(s.clone()),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(format!("<{} bytes>", b.len())),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => {
                J::Array(v.iter().map(Value::to_json).collect())
            }
            Value::Dict(items) => J::Object(
                items
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
            Value::Global { module, name } => J::String(format!("{module}.{name}")),
            Value::Object {
                state: Some(state), ..
            } if matches!(**state, Value::Dict(_)) => state.to_json(),
            Value::Object { items, .. } if !items.is_empty() => J::Object(
                items
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
            Value::Object { args, .. } => J::Array(args.iter().map(Value::to_json).collect()),
            Value::PersistentId(_) => J::String("<persistent id>".into()),
        }
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => other.describe(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Everything that can be wrong with a pickle. Positions are byte offsets
/// into the pickle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error("the pickle ends at byte {at} in the middle of an opcode (truncated)")]
    Truncated { at: usize },
    #[error("the pickle ends without its STOP opcode (truncated)")]
    NoStop,
    #[error("unknown pickle opcode 0x{opcode:02x} at byte {at}")]
    UnknownOpcode { opcode: u8, at: usize },
    #[error("pickle protocol {0} is newer than the protocols 0–5 rankscope reads")]
    Protocol(u8),
    #[error("pickle opcode {opcode} at byte {at} is not supported: {why}")]
    Unsupported {
        opcode: &'static str,
        at: usize,
        why: &'static str,
    },
    #[error("malformed pickle at byte {at}: {why}")]
    Malformed { at: usize, why: String },
    #[error("the pickle refers to {module}.{name}, which runs code or reaches the system when Python loads the file; rankscope never runs anything from a file and refuses this one")]
    CodeGlobal { module: String, name: String },
    #[error("the pickle nests deeper than {MAX_DEPTH} levels (or refers to itself)")]
    TooDeep,
    #[error("the pickle unfolds to more than {MAX_VALUES} values, or to more than {MAX_SHARED} beyond its own by repeating shared ones")]
    TooManyValues,
    #[error("a string of {len} bytes at byte {at} is longer than the {MAX_STRING} allowed")]
    StringTooLong { len: u64, at: usize },
    #[error("the pickle's memo has more than {MAX_MEMO} entries")]
    MemoTooLarge,
}

/// Modules whose globals exist to run code, load code or touch the system.
/// Never resolved either way; named so the message can say what the file tried.
const CODE_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "socket",
    "runpy",
    "importlib",
    "pickle",
    "_pickle",
    "marshal",
    "ctypes",
    "pty",
    "webbrowser",
    "code",
    "codeop",
    "commands",
    "multiprocessing",
    "pdb",
    "timeit",
    "cProfile",
    "profile",
    "pip",
    "setuptools",
];
/// Builtins that run, load or reach code (`builtins.eval`, `getattr`, …).
const CODE_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "execfile",
    "apply",
    "file",
    "reload",
    "memoryview",
    "help",
    "exit",
    "quit",
];

fn is_code_global(module: &str, name: &str) -> bool {
    let top = module.split('.').next().unwrap_or(module);
    if CODE_MODULES.contains(&top) {
        return true;
    }
    let builtin = matches!(module, "builtins" | "__builtin__" | "__builtins__");
    builtin && CODE_BUILTINS.contains(&name)
}

type Id = usize;

/// A value in the arena: containers hold ids, so sharing and later mutation work.
#[derive(Debug)]
enum Node {
    Leaf(Value),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Object {
        module: String,
        name: String,
        args: Id,
        state: Option<Id>,
        items: Vec<(Id, Id)>,
    },
    PersistentId(Id),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

/// Parses one pickle from the start of `data`. Returns the value and the
/// number of bytes the pickle took (up to and including `STOP`), so that
/// pickles written one after another (the legacy `torch.save` format) can be
/// read in turn.
pub fn parse(data: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    let mut budget = m.arena.len().saturating_add(MAX_SHARED).min(MAX_VALUES);
    let value = m.unfold(root, 0, &mut budget)?;
    Ok((value, m.pos))
}

impl<'a> Machine<'a> {
    fn malformed(&self, at: usize, why: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            at,
            why: why.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(PickleError::Truncated { at: self.pos })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take_array::<1>()?[0])
    }

    /// A length-prefixed byte run, checked against [`MAX_STRING`] and the bytes left.
    fn sized(&mut self, len: u64, at: usize) -> Result<&'a [u8], PickleError> {
        if len > MAX_STRING {
            return Err(PickleError::StringTooLong { len, at });
        }
        self.take(len as usize)
    }

    /// A newline-terminated line (protocol 0 arguments), without the newline.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated { at: self.pos })?;
        let out = &rest[..n];
        self.pos += n + 1;
        Ok(out)
    }

    fn line_text(&mut self, at: usize) -> Result<&'a str, PickleError> {
        let line = self.line()?;
        std::str::from_utf8(line).map_err(|_| self.malformed(at, "a text argument is not UTF-8"))
    }

    fn new_node(&mut self, node: Node) -> Id {
        self.arena.push(node);
        self.arena.len() - 1
    }

    fn push(&mut self, node: Node) {
        let id = self.new_node(node);
        self.stack.push(id);
    }

    fn push_leaf(&mut self, v: Value) {
        self.push(Node::Leaf(v));
    }

    fn pop(&mut self, at: usize) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.malformed(at, "an opcode takes a value from the stack across a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed(at, "an opcode needs a value but the stack is empty"))
    }

    fn top(&self, at: usize) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.malformed(at, "an opcode uses a value from the stack across a MARK"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.malformed(at, "an opcode needs a value but the stack is empty"))
    }

    /// Everything pushed since the last MARK, and the MARK removed.
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed(at, "an opcode needs a MARK but there is none"))?;
        if m > self.stack.len() {
            return Err(self.malformed(at, "the stack is shorter than its MARK"));
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64, at: usize) -> Result<(), PickleError> {
        let id = self.top(at)?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(PickleError::MemoTooLarge);
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<(), PickleError> {
        let id = *self.memo.get(&key).ok_or_else(|| {
            self.malformed(at, format!("memo entry {key} is read before it is written"))
        })?;
        self.stack.push(id);
        Ok(())
    }

    fn global(&mut self, module: String, name: String) -> Result<(), PickleError> {
        if is_code_global(&module, &name) {
            return Err(PickleError::CodeGlobal { module, name });
        }
        self.push_leaf(Value::Global { module, name });
        Ok(())
    }

    /// `func(*args)`, recorded: the callable must be a global.
    fn call(&mut self, func: Id, args: Id, at: usize) -> Result<(), PickleError> {
        let (module, name) = match &self.arena[func] {
            Node::Leaf(Value::Global { module, name }) => (module.clone(), name.clone()),
            _ => {
                return Err(self.malformed(
                    at,
                    "a call whose callable is not a global (rankscope calls nothing)",
                ))
            }
        };
        if !matches!(self.arena[args], Node::Tuple(_)) {
            return Err(self.malformed(
                at,
                format!("the arguments of {module}.{name} are not a tuple"),
            ));
        }
        // `OrderedDict()` is a dict (its items come by SETITEMS afterwards).
        if module == "collections" && name == "OrderedDict" {
            self.push(Node::Dict(Vec::new()));
            return Ok(());
        }
        self.push(Node::Object {
            module,
            name,
            args,
            state: None,
            items: Vec::new(),
        });
        Ok(())
    }

    fn set_items(
        &mut self,
        target: Id,
        pairs: Vec<(Id, Id)>,
        at: usize,
    ) -> Result<(), PickleError> {
        match &mut self.arena[target] {
            Node::Dict(items) | Node::Object { items, .. } => {
                items.extend(pairs);
                Ok(())
            }
            _ => Err(self.malformed(at, "SETITEM(S) on something that is not a dict")),
        }
    }

    fn append(&mut self, target: Id, values: Vec<Id>, at: usize) -> Result<(), PickleError> {
        match &mut self.arena[target] {
            Node::List(items) | Node::Set(items) => {
                items.extend(values);
                Ok(())
            }
            _ => Err(self.malformed(
                at,
                "APPEND(S) or ADDITEMS on something that is not a list or set",
            )),
        }
    }

    fn pairs(&self, flat: Vec<Id>, at: usize) -> Result<Vec<(Id, Id)>, PickleError> {
        if flat.len() & 1 == 1 {
            return Err(self.malformed(at, "a dict built from an odd number of keys and values"));
        }
        Ok(flat.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    fn int_text(&self, text: &str, at: usize) -> Result<Value, PickleError> {
        let t = text.trim().trim_end_matches('L');
        match t {
            "00" => return Ok(Value::Bool(false)),
            "01" => return Ok(Value::Bool(true)),
            _ => {}
        }
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        if !t.is_empty()
            && t.trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Ok(Value::BigInt(t.to_string()));
        }
        Err(self.malformed(at, format!("{t:?} is not an integer")))
    }

    /// Runs opcodes up to STOP; returns the id of the result.
    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let at = self.pos;
            let Ok(op) = self.u8() else {
                return Err(PickleError::NoStop);
            };
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(PickleError::Protocol(proto));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => {
                    let id = self.pop(at)?;
                    return Ok(id);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let id = self.top(at)?;
                    self.stack.push(id);
                }
                b'N' => self.push_leaf(Value::None),
                0x88 => self.push_leaf(Value::Bool(true)),
                0x89 => self.push_leaf(Value::Bool(false)),
                b'I' | b'L' => {
                    let t = self.line_text(at)?;
                    let v = self.int_text(t, at)?;
                    self.push_leaf(v);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.take_array()?);
                    self.push_leaf(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push_leaf(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_array()?);
                    self.push_leaf(Value::Int(i64::from(v)));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        u64::from(self.u8()?)
                    } else {
                        u64::from(u32::from_le_bytes(self.take_array()?))
                    };
                    let bytes = self.sized(n, at)?;
                    self.push_leaf(long_value(bytes));
                }
                b'F' => {
                    let t = self.line_text(at)?;
                    let f = t
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| self.malformed(at, format!("{t:?} is not a number")))?;
                    self.push_leaf(Value::Float(f));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take_array()?);
                    self.push_leaf(Value::Float(v));
                }
                b'S' => {
                    let line = self.line()?;
                    let s = unquote(line).ok_or_else(|| {
                        self.malformed(at, "STRING argument is not a quoted string")
                    })?;
                    self.push_leaf(Value::Str(s));
                }
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        u64::from(u32::from_le_bytes(self.take_array()?))
                    } else {
                        u64::from(self.u8()?)
                    };
                    // Python 2 `str`: bytes, read as Latin-1 text.
                    let s = self.sized(n, at)?.iter().map(|&b| char::from(b)).collect();
                    self.push_leaf(Value::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => u64::from(u32::from_le_bytes(self.take_array()?)),
                        b'C' => u64::from(self.u8()?),
                        _ => u64::from_le_bytes(self.take_array()?),
                    };
                    let b = self.sized(n, at)?.to_vec();
                    self.push_leaf(Value::Bytes(b));
                }
                b'V' => {
                    let line = self.line()?;
                    let s = raw_unicode_escape(line)
                        .ok_or_else(|| self.malformed(at, "UNICODE argument is not valid text"))?;
                    self.push_leaf(Value::Str(s));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u64::from(u32::from_le_bytes(self.take_array()?)),
                        0x8c => u64::from(self.u8()?),
                        _ => u64::from_le_bytes(self.take_array()?),
                    };
                    let bytes = self.sized(n, at)?;
                    let s = std::str::from_utf8(bytes)
                        .map_err(|_| self.malformed(at, "a unicode string is not UTF-8"))?;
                    self.push_leaf(Value::Str(s.to_string()));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    let list = self.top(at)?;
                    self.append(list, vec![v], at)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark(at)?;
                    let list = self.top(at)?;
                    self.append(list, items, at)?;
                }
                b')' => self.push(Node::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b'd' => {
                    let flat = self.pop_mark(at)?;
                    let pairs = self.pairs(flat, at)?;
                    self.push(Node::Dict(pairs));
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let d = self.top(at)?;
                    self.set_items(d, vec![(k, v)], at)?;
                }
                b'u' => {
                    let flat = self.pop_mark(at)?;
                    let pairs = self.pairs(flat, at)?;
                    let d = self.top(at)?;
                    self.set_items(d, pairs, at)?;
                }
                0x8f => self.push(Node::Set(Vec::new())),
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Set(items));
                }
                b'c' => {
                    let module = self.line_text(at)?.to_string();
                    let name = self.line_text(at)?.to_string();
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let text = |id: Id| match &self.arena[id] {
                        Node::Leaf(Value::Str(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let (Some(module), Some(name)) = (text(module), text(name)) else {
                        return Err(self.malformed(at, "STACK_GLOBAL needs two strings"));
                    };
                    self.global(module, name)?;
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    self.call(func, args, at)?;
                }
                0x81 => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    self.call(cls, args, at)?;
                }
                0x92 => {
                    let _kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    self.call(cls, args, at)?;
                }
                b'i' => {
                    let module = self.line_text(at)?.to_string();
                    let name = self.line_text(at)?.to_string();
                    let items = self.pop_mark(at)?;
                    self.global(module, name)?;
                    let cls = self.pop(at)?;
                    let args = self.new_node(Node::Tuple(items));
                    self.call(cls, args, at)?;
                }
                b'o' => {
                    let mut items = self.pop_mark(at)?;
                    if items.is_empty() {
                        return Err(self.malformed(at, "OBJ without a class"));
                    }
                    let cls = items.remove(0);
                    let args = self.new_node(Node::Tuple(items));
                    self.call(cls, args, at)?;
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let obj = self.top(at)?;
                    // The state of a recorded object is kept; on anything else
                    // (an OrderedDict's attributes) it carries nothing we read.
                    if let Node::Object { state: s, .. } = &mut self.arena[obj] {
                        *s = Some(state);
                    }
                }
                b'p' => {
                    let t = self.line_text(at)?;
                    let key = t
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.malformed(at, "PUT index is not a number"))?;
                    self.memo_put(key, at)?;
                }
                b'q' => {
                    let key = u64::from(self.u8()?);
                    self.memo_put(key, at)?;
                }
                b'r' => {
                    let key = u64::from(u32::from_le_bytes(self.take_array()?));
                    self.memo_put(key, at)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key, at)?;
                }
                b'g' => {
                    let t = self.line_text(at)?;
                    let key = t
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.malformed(at, "GET index is not a number"))?;
                    self.memo_get(key, at)?;
                }
                b'h' => {
                    let key = u64::from(self.u8()?);
                    self.memo_get(key, at)?;
                }
                b'j' => {
                    let key = u64::from(u32::from_le_bytes(self.take_array()?));
                    self.memo_get(key, at)?;
                }
                b'P' => {
                    let t = self.line_text(at)?.to_string();
                    let pid = self.new_node(Node::Leaf(Value::Str(t)));
                    self.push(Node::PersistentId(pid));
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    self.push(Node::PersistentId(pid));
                }
                0x82..=0x84 => {
                    return Err(PickleError::Unsupported {
                        opcode: "EXT1/EXT2/EXT4",
                        at,
                        why: "the extension registry refers to code outside the file",
                    })
                }
                0x97 | 0x98 => {
                    return Err(PickleError::Unsupported {
                        opcode: "NEXT_BUFFER/READONLY_BUFFER",
                        at,
                        why: "out-of-band buffers are not in the file",
                    })
                }
                _ => return Err(PickleError::UnknownOpcode { opcode: op, at }),
            }
        }
    }

    /// The arena value `id` as a tree.
    fn unfold(&self, id: Id, depth: usize, budget: &mut usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        *budget = budget.checked_sub(1).ok_or(PickleError::TooManyValues)?;
        let all = |ids: &[Id], budget: &mut usize| -> Result<Vec<Value>, PickleError> {
            ids.iter()
                .map(|&i| self.unfold(i, depth + 1, budget))
                .collect()
        };
        let pairs =
            |ps: &[(Id, Id)], budget: &mut usize| -> Result<Vec<(Value, Value)>, PickleError> {
                ps.iter()
                    .map(|&(k, v)| {
                        Ok((
                            self.unfold(k, depth + 1, budget)?,
                            self.unfold(v, depth + 1, budget)?,
                        ))
                    })
                    .collect()
            };
        Ok(match &self.arena[id] {
            Node::Leaf(v) => v.clone(),
            Node::List(ids) => Value::List(all(ids, budget)?),
            Node::Tuple(ids) => Value::Tuple(all(ids, budget)?),
            Node::Set(ids) => Value::Set(all(ids, budget)?),
            Node::Dict(ps) => Value::Dict(pairs(ps, budget)?),
            Node::Object {
                module,
                name,
                args,
                state,
                items,
            } => {
                let args = match self.unfold(*args, depth + 1, budget)? {
                    Value::Tuple(v) => v,
                    other => vec![other],
                };
                let state = match state {
                    Some(s) => Some(Box::new(self.unfold(*s, depth + 1, budget)?)),
                    None => None,
                };
                Value::Object {
                    module: module.clone(),
                    name: name.clone(),
                    args,
                    state,
                    items: pairs(items, budget)?,
                }
            }
            Node::PersistentId(pid) => {
                Value::PersistentId(Box::new(self.unfold(*pid, depth + 1, budget)?))
            }
        })
    }
}

/// A little-endian two's-complement integer (LONG1/LONG4).
fn long_value(mut bytes: &[u8]) -> Value {
    // Drop sign-extension bytes a non-minimal writer left (Python writes minimal ones).
    while let [rest @ .., prev, last] = bytes {
        let redundant = (*last == 0 && prev & 0x80 == 0) || (*last == 0xFF && prev & 0x80 != 0);
        if bytes.len() <= 8 || !redundant {
            break;
        }
        bytes = &bytes[..rest.len() + 1];
    }
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut a = if negative { [0xFF; 8] } else { [0; 8] };
        a[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(a));
    }
    Value::BigInt(format!("<a {}-byte integer>", bytes.len()))
}

/// A protocol-0 quoted string `'abc'` with Python escapes (the common ones).
fn unquote(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let q = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = text.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// Protocol-0 `UNICODE` text: Latin-1 bytes with `\uXXXX`/`\UXXXXXXXX` escapes.
fn raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == b'\\' && matches!(line.get(i + 1), Some(b'u') | Some(b'U')) {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = std::str::from_utf8(line.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
            i += 2 + n;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
