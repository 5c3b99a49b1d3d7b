//! JSON has no NaN or ±∞, and serde_json would write them as `null` (which
//! then does not read back as a number). A figure may hold them — a missing
//! log value, an infinite condition number — so they are written as the
//! strings `"NaN"`, `"inf"` and `"-inf"`; finite values stay plain numbers.
//! Used by figure specs and by the analysis results that cross from a worker to the page
//! (a surgery sweep's losses may be NaN: a diverged model, or another share's pass).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Json {
    Num(f64),
    Tag(String),
}

fn write(v: f64) -> Json {
    match v {
        v if v.is_finite() => Json::Num(v),
        v if v.is_nan() => Json::Tag("NaN".into()),
        v if v > 0.0 => Json::Tag("inf".into()),
        _ => Json::Tag("-inf".into()),
    }
}

fn read<E: serde::de::Error>(j: Json) -> Result<f64, E> {
    match j {
        Json::Num(v) => Ok(v),
        Json::Tag(t) => match t.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::custom(format!("`{other}` is not a number"))),
        },
    }
}

fn read_row<E: serde::de::Error, const N: usize>(row: Vec<Json>) -> Result<[f64; N], E> {
    let n = row.len();
    let values = row.into_iter().map(read).collect::<Result<Vec<f64>, E>>()?;
    values
        .try_into()
        .map_err(|_| E::custom(format!("a row of {n} values where {N} were expected")))
}

pub mod rows {
    use super::*;
    pub fn serialize<S: Serializer, const N: usize>(
        v: &[[f64; N]],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            v.iter()
                .map(|r| r.iter().map(|&x| write(x)).collect::<Vec<_>>()),
        )
    }
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Vec<[f64; N]>, D::Error> {
        Vec::<Vec<Json>>::deserialize(d)?
            .into_iter()
            .map(read_row)
            .collect()
    }
}

pub mod opt_rows {
    use super::*;
    pub fn serialize<S: Serializer, const N: usize>(
        v: &Option<Vec<[f64; N]>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(rows) => s.serialize_some(
                &rows
                    .iter()
                    .map(|r| r.iter().map(|&x| write(x)).collect::<Vec<_>>())
                    .collect::<Vec<_>>(),
            ),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<Vec<[f64; N]>>, D::Error> {
        Option::<Vec<Vec<Json>>>::deserialize(d)?
            .map(|rows| rows.into_iter().map(read_row).collect())
            .transpose()
    }
}

pub mod opt_pair {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<(f64, f64)>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some((a, b)) => s.serialize_some(&(write(*a), write(*b))),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(f64, f64)>, D::Error> {
        match Option::<(Json, Json)>::deserialize(d)? {
            Some((a, b)) => Ok(Some((read(a)?, read(b)?))),
            None => Ok(None),
        }
    }
}

/// An f64 that JSON carries whatever its value, for the modules below.
#[derive(Clone, Copy)]
struct Any(f64);

impl Serialize for Any {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(Json::deserialize(d)?).map(Any)
    }
}

/// One `f64`.
pub mod num {
    use super::*;
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        Any(*v).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Any::deserialize(d)?.0)
    }
}

/// A `Vec<f64>`.
pub mod vec {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&x| Any(x)))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Any>::deserialize(d)?
            .into_iter()
            .map(|a| a.0)
            .collect())
    }
}

/// An `Option<Vec<f64>>`.
pub mod opt_vec {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&v.iter().map(|&x| Any(x)).collect::<Vec<_>>()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        Ok(Option::<Vec<Any>>::deserialize(d)?.map(|v| v.into_iter().map(|a| a.0).collect()))
    }
}

/// A `Vec<Vec<f64>>`.
pub mod vecs {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            v.iter()
                .map(|r| r.iter().map(|&x| Any(x)).collect::<Vec<_>>()),
        )
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        Ok(Vec::<Vec<Any>>::deserialize(d)?
            .into_iter()
            .map(|r| r.into_iter().map(|a| a.0).collect())
            .collect())
    }
}
