//! A minimal `torch.save` writer: a state dict of row-major tensors as a zip
//! of stored entries (`<archive>/data.pkl`, `<archive>/byteorder`,
//! `<archive>/data/<k>`, data aligned to 64 bytes as PyTorch aligns it) with a
//! protocol-2 pickle of `_rebuild_tensor_v2` calls. For benchmarks and tests
//! that need large or sharded `.pt` files; the reader is checked against
//! files written by real PyTorch and CPython, not against this.
//!
//! CRC-32 fields are left at 0 (rankscope reads entries in place and never
//! checks them), so other zip tools may refuse these files; sizes are 32-bit
//! (no zip64), so a file must stay under 4 GiB.

use std::io::{self, Write};

use crate::formats::safetensors::Dtype;

/// Writes a tensor's bytes into the file.
pub type WriteData<'a, W> = Box<dyn FnOnce(&mut W) -> io::Result<()> + 'a>;

/// One tensor to write: its name, shape, dtype, and a function that writes
/// its `numel · size` bytes (row-major, little-endian).
pub struct TensorOut<'a, W> {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: Dtype,
    pub write: WriteData<'a, W>,
}

fn storage_class(dtype: Dtype) -> io::Result<&'static str> {
    Ok(match dtype {
        Dtype::F32 => "FloatStorage",
        Dtype::F64 => "DoubleStorage",
        Dtype::F16 => "HalfStorage",
        Dtype::BF16 => "BFloat16Storage",
        Dtype::I64 => "LongStorage",
        Dtype::I32 => "IntStorage",
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no storage class written for {other}"),
            ))
        }
    })
}

/// The pickle of the state dict: `{name: _rebuild_tensor_v2(storage k, 0, shape, stride, False, OrderedDict())}`.
fn state_dict_pickle<W>(tensors: &[TensorOut<'_, W>]) -> io::Result<Vec<u8>> {
    let mut p = b"\x80\x02}(".to_vec();
    let text = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    };
    // LONG1 of 8 bytes (BININT is only 32-bit); sizes stay below 2^63.
    let int = |p: &mut Vec<u8>, v: u64| {
        p.extend_from_slice(&[0x8a, 8]);
        p.extend_from_slice(&v.to_le_bytes());
    };
    for (k, t) in tensors.iter().enumerate() {
        text(&mut p, &t.name);
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        text(&mut p, "storage");
        p.extend_from_slice(format!("ctorch\n{}\n", storage_class(t.dtype)?).as_bytes());
        text(&mut p, &k.to_string());
        text(&mut p, "cpu");
        int(&mut p, t.shape.iter().product());
        p.extend_from_slice(b"tQ");
        int(&mut p, 0);
        p.push(b'(');
        for &d in &t.shape {
            int(&mut p, d);
        }
        p.extend_from_slice(b"t(");
        let mut stride = 1u64;
        let mut strides = Vec::new();
        for &d in t.shape.iter().rev() {
            strides.push(stride);
            stride *= d;
        }
        for s in strides.into_iter().rev() {
            int(&mut p, s);
        }
        p.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtR");
    }
    p.extend_from_slice(b"u.");
    Ok(p)
}

struct ZipOut<W: Write> {
    w: W,
    at: u64,
    central: Vec<u8>,
    count: u16,
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "this writer makes files under 4 GiB only",
    )
}

impl<W: Write> ZipOut<W> {
    fn entry(
        &mut self,
        name: &str,
        len: u64,
        data: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        let offset = u32::try_from(self.at).map_err(|_| too_large())?;
        let len32 = u32::try_from(len).map_err(|_| too_large())?;
        let pad = (64 - (self.at + 30 + name.len() as u64 + 4) % 64) % 64;
        let mut local = Vec::new();
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, stored, time, date
        local.extend_from_slice(&0u32.to_le_bytes()); // CRC-32, not written
        local.extend_from_slice(&len32.to_le_bytes());
        local.extend_from_slice(&len32.to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&(4 + pad as u16).to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        local.extend_from_slice(b"FB"); // torch.save's padding field
        local.extend_from_slice(&(pad as u16).to_le_bytes());
        local.extend(std::iter::repeat_n(b'Z', pad as usize));
        self.w.write_all(&local)?;
        data(&mut self.w)?;
        self.at += local.len() as u64 + len;

        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, stored, time, date
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&len32.to_le_bytes());
        c.extend_from_slice(&len32.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.count += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        let cd_offset = u32::try_from(self.at).map_err(|_| too_large())?;
        self.w.write_all(&self.central)?;
        let mut end = 0x0605_4b50u32.to_le_bytes().to_vec();
        end.extend_from_slice(&[0, 0, 0, 0]);
        end.extend_from_slice(&self.count.to_le_bytes());
        end.extend_from_slice(&self.count.to_le_bytes());
        end.extend_from_slice(&(self.central.len() as u32).to_le_bytes());
        end.extend_from_slice(&cd_offset.to_le_bytes());
        end.extend_from_slice(&[0, 0]);
        self.w.write_all(&end)?;
        Ok(self.w)
    }
}

/// Writes `tensors` as `torch.save(state_dict)` would (see the module doc).
pub fn write_state_dict<W: Write>(
    w: W,
    archive: &str,
    tensors: Vec<TensorOut<'_, W>>,
) -> io::Result<W> {
    let pkl = state_dict_pickle(&tensors)?;
    let mut z = ZipOut {
        w,
        at: 0,
        central: Vec::new(),
        count: 0,
    };
    z.entry(&format!("{archive}/data.pkl"), pkl.len() as u64, |w| {
        w.write_all(&pkl)
    })?;
    z.entry(&format!("{archive}/byteorder"), 6, |w| {
        w.write_all(b"little")
    })?;
    for (k, t) in tensors.into_iter().enumerate() {
        let len = t.shape.iter().product::<u64>() * t.dtype.size_bytes() as u64;
        z.entry(&format!("{archive}/data/{k}"), len, t.write)?;
    }
    z.finish()
}
