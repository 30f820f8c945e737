//! Parameter generators and the dynamically typed [`Value`] bound to
//! prepared statements.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::{BufMut, BytesMut};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::spec::{Dist, ParamSpec, Vars};

/// A generated parameter value; converted to the statement's parameter type
/// when bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s}"),
        }
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

/// PostgreSQL's binary NUMERIC for an integer.
fn numeric_from_int(v: i64, out: &mut BytesMut) {
    let negative = v < 0;
    let mut n = v.unsigned_abs();
    let mut digits = Vec::new();
    while n > 0 {
        digits.push((n % 10_000) as i16);
        n /= 10_000;
    }
    digits.reverse();
    let weight = digits.len() as i16 - 1;
    out.put_i16(digits.len() as i16);
    out.put_i16(if digits.is_empty() { 0 } else { weight });
    out.put_u16(if negative { 0x4000 } else { 0 });
    out.put_i16(0);
    for d in digits {
        out.put_i16(d);
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::NUMERIC) => {
                numeric_from_int(*i, out);
                Ok(IsNull::No)
            }
            (Value::Float(x), &Type::FLOAT4) => (*x as f32).to_sql(ty, out),
            (Value::Float(x), &Type::FLOAT8) => x.to_sql(ty, out),
            (Value::Int(i), _) => i.to_string().to_sql(&Type::TEXT, out),
            (Value::Float(x), _) => x.to_string().to_sql(&Type::TEXT, out),
            (Value::Text(s), &Type::INT2 | &Type::INT4 | &Type::INT8) => {
                Value::Int(s.parse()?).to_sql(ty, out)
            }
            (Value::Text(s), _) => s.as_str().to_sql(&Type::TEXT, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A generator ready to draw values.
#[derive(Debug, Clone)]
pub enum Generator {
    /// Uniform integers in `[min, max]`.
    Uniform {
        /// Lower bound.
        min: i64,
        /// Upper bound.
        max: i64,
    },
    /// Zipf-distributed integers, rank 1 = `min`.
    Zipfian {
        /// Lower bound.
        min: i64,
        /// The distribution over ranks `1..=n`.
        zipf: Zipf<f64>,
    },
    /// A counter shared by all clients.
    Sequential {
        /// The next value.
        next: Arc<AtomicI64>,
        /// Increment.
        step: i64,
    },
    /// Uniform floats.
    Float {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Random alphanumeric text.
    Text {
        /// Length.
        len: usize,
        /// Prefix.
        prefix: String,
    },
    /// One of the strings.
    Choice(Vec<String>),
}

impl Generator {
    /// Builds the generator of `spec` (validated beforehand).
    pub fn new(name: &str, spec: &ParamSpec, vars: &Vars) -> Result<Generator, String> {
        let int = |n: &Option<crate::spec::Num>,
                   field: &str,
                   default: Option<i64>|
         -> Result<i64, String> {
            match (n, default) {
                (Some(n), _) => vars
                    .int(n)
                    .map_err(|e| format!("params.{name}.{field}: {e}")),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(format!("params.{name}.{field}: required")),
            }
        };
        Ok(match spec {
            ParamSpec::Int {
                dist,
                min,
                max,
                theta,
                start,
                step,
            } => match dist {
                Dist::Uniform => Generator::Uniform {
                    min: int(min, "min", None)?,
                    max: int(max, "max", None)?,
                },
                Dist::Zipfian => {
                    let lo = int(min, "min", None)?;
                    let hi = int(max, "max", None)?;
                    let n = (hi - lo + 1) as f64;
                    let zipf = Zipf::new(n, theta.unwrap_or(0.99))
                        .map_err(|e| format!("params.{name}: {e}"))?;
                    Generator::Zipfian { min: lo, zipf }
                }
                Dist::Sequential => Generator::Sequential {
                    next: Arc::new(AtomicI64::new(int(start, "start", Some(1))?)),
                    step: int(step, "step", Some(1))?,
                },
            },
            ParamSpec::Float { min, max } => Generator::Float {
                min: *min,
                max: *max,
            },
            ParamSpec::Text { len, prefix } => Generator::Text {
                len: *len,
                prefix: prefix.clone(),
            },
            ParamSpec::Choice { values } => Generator::Choice(values.clone()),
        })
    }

    /// Draws a value.
    pub fn draw(&self, rng: &mut StdRng) -> Value {
        match self {
            Generator::Uniform { min, max } => Value::Int(rng.random_range(*min..=*max)),
            Generator::Zipfian { min, zipf } => Value::Int(min + zipf.sample(rng) as i64 - 1),
            Generator::Sequential { next, step } => {
                Value::Int(next.fetch_add(*step, Ordering::Relaxed))
            }
            Generator::Float { min, max } => Value::Float(rng.random_range(*min..*max)),
            Generator::Text { len, prefix } => {
                let mut s = prefix.clone();
                s.extend((0..*len).map(|_| rng.sample(rand::distr::Alphanumeric) as char));
                Value::Text(s)
            }
            Generator::Choice(values) => {
                Value::Text(values[rng.random_range(0..values.len())].clone())
            }
        }
    }
}

/// Every generator of a workload, by name.
pub type Generators = BTreeMap<String, Generator>;

/// Builds all generators of a workload.
pub fn generators(specs: &BTreeMap<String, ParamSpec>, vars: &Vars) -> Result<Generators, String> {
    specs
        .iter()
        .map(|(name, spec)| Ok((name.clone(), Generator::new(name, spec, vars)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_prefers_low_ranks_and_stays_in_bounds() {
        let g = Generator::Zipfian {
            min: 10,
            zipf: Zipf::new(100.0, 0.99).unwrap(),
        };
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<i64> = (0..10_000)
            .map(|_| match g.draw(&mut rng) {
                Value::Int(i) => i,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(draws.iter().all(|v| (10..=109).contains(v)));
        let first = draws.iter().filter(|v| **v == 10).count();
        let last = draws.iter().filter(|v| **v == 109).count();
        assert!(first > 10 * last.max(1), "first {first} last {last}");
    }

    #[test]
    fn sequential_is_shared() {
        let g = Generator::Sequential {
            next: Arc::new(AtomicI64::new(5)),
            step: 10,
        };
        let g2 = g.clone();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(g.draw(&mut rng), Value::Int(5));
        assert_eq!(g2.draw(&mut rng), Value::Int(15));
    }

    #[test]
    fn numeric_encoding_of_integers() {
        let mut out = BytesMut::new();
        numeric_from_int(123_456_789, &mut out);
        // ndigits 3, weight 2, sign +, dscale 0, digits 1 2345 6789
        assert_eq!(
            &out[..],
            &[0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1a, 0x85]
        );
    }
}
