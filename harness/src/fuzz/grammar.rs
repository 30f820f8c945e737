//! The SQL grammar of the fuzzer: a random schema with rows, and random
//! typed statements over it (sqlsmith-style: expressions grow from typed
//! productions until a depth budget runs out), plus hostile shapes (deep
//! nesting, long chains, overflow, division by zero, odd casts, huge
//! literals, stray placeholders).

use rand::Rng;
use rand::rngs::StdRng;

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// INT
    Int,
    /// BIGINT
    BigInt,
    /// TEXT
    Text,
    /// BOOLEAN
    Bool,
    /// DOUBLE PRECISION
    Float,
}

impl Ty {
    fn sql(self) -> &'static str {
        match self {
            Ty::Int => "INT",
            Ty::BigInt => "BIGINT",
            Ty::Text => "TEXT",
            Ty::Bool => "BOOLEAN",
            Ty::Float => "DOUBLE PRECISION",
        }
    }

    fn random(rng: &mut StdRng) -> Ty {
        [Ty::Int, Ty::BigInt, Ty::Text, Ty::Bool, Ty::Float][rng.random_range(0..5)]
    }
}

/// A table: `id INT PRIMARY KEY` and typed columns.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Columns after `id`.
    pub columns: Vec<(String, Ty)>,
}

/// The fuzzer's schema.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Its tables.
    pub tables: Vec<Table>,
}

fn text_literal(rng: &mut StdRng) -> String {
    const WORDS: &[&str] = &[
        "", "a", "abc", "Zed", "it's", "ünï", "  x ", "%_", "NULL", "12",
    ];
    format!(
        "'{}'",
        WORDS[rng.random_range(0..WORDS.len())].replace('\'', "''")
    )
}

fn literal(rng: &mut StdRng, ty: Ty) -> String {
    if rng.random_bool(0.08) {
        return format!("CAST(NULL AS {})", ty.sql());
    }
    match ty {
        Ty::Int => {
            [0, 1, -1, 7, 42, 2_147_483_647, -2_147_483_648][rng.random_range(0..7)].to_string()
        }
        Ty::BigInt => format!(
            "CAST({} AS BIGINT)",
            [0i64, 3, -9, 9_223_372_036_854_775_807][rng.random_range(0..4)]
        ),
        Ty::Text => text_literal(rng),
        Ty::Bool => if rng.random() { "true" } else { "false" }.into(),
        Ty::Float => ["0.5", "-2.25", "1e10", "0.0"][rng.random_range(0..4)].into(),
    }
}

impl Schema {
    /// Two or three tables of two to five columns.
    pub fn random(rng: &mut StdRng) -> Schema {
        let tables = (0..rng.random_range(2..4))
            .map(|t| Table {
                name: format!("fz{t}"),
                columns: (0..rng.random_range(2..6))
                    .map(|c| (format!("c{c}"), Ty::random(rng)))
                    .collect(),
            })
            .collect();
        Schema { tables }
    }

    /// `DROP`/`CREATE TABLE` statements and the rows to insert.
    pub fn setup(&self, rng: &mut StdRng) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(format!("DROP TABLE IF EXISTS {}", t.name));
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|(n, ty)| format!("{n} {}", ty.sql()))
                .collect();
            out.push(format!(
                "CREATE TABLE {} (id INT PRIMARY KEY, {})",
                t.name,
                cols.join(", ")
            ));
            let rows: Vec<String> = (0..rng.random_range(5..25))
                .map(|id| {
                    let vals: Vec<String> =
                        t.columns.iter().map(|(_, ty)| literal(rng, *ty)).collect();
                    format!("({id}, {})", vals.join(", "))
                })
                .collect();
            out.push(format!("INSERT INTO {} VALUES {}", t.name, rows.join(", ")));
        }
        out
    }
}

/// Generates statements over a schema.
pub struct Gen<'a> {
    rng: &'a mut StdRng,
    schema: &'a Schema,
}

impl<'a> Gen<'a> {
    /// A generator drawing from `rng`.
    pub fn new(rng: &'a mut StdRng, schema: &'a Schema) -> Gen<'a> {
        Gen { rng, schema }
    }

    fn column(&mut self, table: &Table, ty: Ty) -> Option<String> {
        let cols: Vec<&String> = table
            .columns
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n)
            .collect();
        if ty == Ty::Int && (cols.is_empty() || self.rng.random_bool(0.3)) {
            return Some("id".into());
        }
        (!cols.is_empty()).then(|| cols[self.rng.random_range(0..cols.len())].clone())
    }

    /// An expression of type `ty` over `table`'s columns.
    pub fn expr(&mut self, table: &Table, ty: Ty, depth: u32) -> String {
        if depth == 0 || self.rng.random_bool(0.3) {
            if self.rng.random_bool(0.6)
                && let Some(c) = self.column(table, ty)
            {
                return c;
            }
            return literal(self.rng, ty);
        }
        let d = depth - 1;
        let pick = self.rng.random_range(0..6);
        match ty {
            Ty::Int | Ty::BigInt => match pick {
                0 => {
                    let op = ["+", "-", "*", "/", "%"][self.rng.random_range(0..5)];
                    format!(
                        "({} {op} {})",
                        self.expr(table, ty, d),
                        self.expr(table, ty, d)
                    )
                }
                1 => format!("abs({})", self.expr(table, ty, d)),
                2 => format!("length({})", self.expr(table, Ty::Text, d)),
                3 => format!(
                    "CASE WHEN {} THEN {} ELSE {} END",
                    self.expr(table, Ty::Bool, d),
                    self.expr(table, ty, d),
                    self.expr(table, ty, d)
                ),
                4 => format!("CAST({} AS {})", self.expr(table, Ty::Text, d), ty.sql()),
                _ => format!(
                    "coalesce({}, {})",
                    self.expr(table, ty, d),
                    self.expr(table, ty, d)
                ),
            },
            Ty::Text => match pick {
                0 => format!(
                    "({} || {})",
                    self.expr(table, ty, d),
                    self.expr(table, ty, d)
                ),
                1 => format!("upper({})", self.expr(table, ty, d)),
                2 => format!("lower({})", self.expr(table, ty, d)),
                3 => format!(
                    "substr({}, {}, {})",
                    self.expr(table, ty, d),
                    self.expr(table, Ty::Int, d),
                    self.expr(table, Ty::Int, d)
                ),
                4 => format!("CAST({} AS TEXT)", self.expr(table, Ty::Int, d)),
                _ => format!(
                    "coalesce({}, {})",
                    self.expr(table, ty, d),
                    literal(self.rng, ty)
                ),
            },
            Ty::Bool => match pick {
                0 => {
                    let t = [Ty::Int, Ty::Text, Ty::Float][self.rng.random_range(0..3)];
                    let op = ["=", "<>", "<", "<=", ">", ">="][self.rng.random_range(0..6)];
                    format!(
                        "({} {op} {})",
                        self.expr(table, t, d),
                        self.expr(table, t, d)
                    )
                }
                1 => {
                    let op = ["AND", "OR"][self.rng.random_range(0..2)];
                    format!(
                        "({} {op} {})",
                        self.expr(table, ty, d),
                        self.expr(table, ty, d)
                    )
                }
                2 => format!("(NOT {})", self.expr(table, ty, d)),
                3 => format!("({} IS NULL)", self.expr(table, Ty::Int, d)),
                4 => format!(
                    "({} IN ({}, {}))",
                    self.expr(table, Ty::Int, d),
                    literal(self.rng, Ty::Int),
                    literal(self.rng, Ty::Int)
                ),
                _ => format!(
                    "({} BETWEEN {} AND {})",
                    self.expr(table, Ty::Int, d),
                    literal(self.rng, Ty::Int),
                    literal(self.rng, Ty::Int)
                ),
            },
            Ty::Float => match pick {
                0 | 1 => {
                    let op = ["+", "-", "*", "/"][self.rng.random_range(0..4)];
                    format!(
                        "({} {op} {})",
                        self.expr(table, ty, d),
                        self.expr(table, ty, d)
                    )
                }
                2 => format!("CAST({} AS DOUBLE PRECISION)", self.expr(table, Ty::Int, d)),
                _ => format!("abs({})", self.expr(table, ty, d)),
            },
        }
    }

    /// A random well- or ill-typed statement (one in ten hostile).
    pub fn statement(&mut self) -> String {
        if self.rng.random_bool(0.1) {
            return self.hostile();
        }
        let t = self.schema.tables[self.rng.random_range(0..self.schema.tables.len())].clone();
        let depth = self.rng.random_range(1..5);
        match self.rng.random_range(0..5) {
            0 => format!(
                "SELECT count(*), sum({}), min({}) FROM {} WHERE {}",
                self.expr(&t, Ty::Int, depth),
                self.expr(&t, Ty::Text, depth),
                t.name,
                self.expr(&t, Ty::Bool, depth)
            ),
            1 => {
                let key = self.expr(&t, Ty::Int, 1);
                format!(
                    "SELECT {key}, count(*) FROM {} GROUP BY {key} ORDER BY 1, 2",
                    t.name
                )
            }
            2 if self.schema.tables.len() > 1 => {
                let u = self.schema.tables[0].clone();
                format!(
                    "SELECT count(*) FROM {} a JOIN {} b ON a.id = b.id WHERE {}",
                    t.name,
                    u.name,
                    self.expr(&t, Ty::Bool, depth).replace("id", "a.id")
                )
            }
            _ => {
                let ty = Ty::random(self.rng);
                format!(
                    "SELECT id, {} FROM {} WHERE {} ORDER BY id LIMIT {}",
                    self.expr(&t, ty, depth),
                    t.name,
                    self.expr(&t, Ty::Bool, depth),
                    self.rng.random_range(0..20)
                )
            }
        }
    }

    /// A hostile statement.
    pub fn hostile(&mut self) -> String {
        let n = [10usize, 100, 1_000, 5_000, 30_000][self.rng.random_range(0..5)];
        let repeat = |open: &str, inner: &str, close: &str| {
            format!("{}{inner}{}", open.repeat(n), close.repeat(n))
        };
        let chain = |term: &str, op: &str| vec![term; n].join(op);
        match self.rng.random_range(0..16) {
            0 => format!("SELECT {}", repeat("upper(", "'x'", ")")),
            1 => format!("SELECT {}", repeat("(", "1", ")")),
            2 => format!("SELECT {}", repeat("abs(-", "1", ")")),
            3 => format!("SELECT {}", chain("1", " + ")),
            4 => format!(
                "SELECT 1 WHERE {}",
                chain("id = 1", " OR ").replace("id", "1")
            ),
            5 => format!("SELECT {}", chain("'a'", " || ")),
            6 => chain("SELECT 1", " UNION ALL "),
            7 => format!("SELECT {}true", "NOT ".repeat(n)),
            8 => format!("SELECT {}", repeat("(SELECT ", "1", ")")),
            9 => [
                "SELECT 2147483647 + 1",
                "SELECT CAST(9223372036854775807 AS BIGINT) + 1",
                "SELECT -CAST(-9223372036854775808 AS BIGINT)",
                "SELECT 1 / 0",
                "SELECT 1 % 0",
                "SELECT 1.0 / 0",
            ][self.rng.random_range(0..6)]
            .into(),
            10 => [
                "SELECT CAST('abc' AS INT)",
                "SELECT CAST('99999999999' AS INT)",
                "SELECT CAST('' AS BOOLEAN)",
                "SELECT CAST('1e400' AS DOUBLE PRECISION)",
                "SELECT CAST(1e300 AS INT)",
            ][self.rng.random_range(0..5)]
            .into(),
            11 => format!("SELECT length('{}')", "x".repeat(n * 30)),
            12 => ["SELECT $1", "SELECT $0", "SELECT $99999999999"][self.rng.random_range(0..3)]
                .into(),
            13 => format!(
                "SELECT 1 IN ({})",
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            ),
            14 => format!("SELECT {}", repeat("position(", "'a' in 'a'", ")")),
            _ => format!(
                "SELECT {} FROM {}",
                (0..n.min(2_000))
                    .map(|i| format!("id AS a{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.schema.tables[0].name
            ),
        }
    }
}
