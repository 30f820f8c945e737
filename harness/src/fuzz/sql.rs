//! The SQL fuzzer: random statements ([`super::grammar`]) run on the
//! target, and on PostgreSQL when one is given; each answer is sorted into
//! a class (a result, or an error's SQLSTATE class), and the classes of the
//! two servers are compared. A hang, a lost connection or a changed probe
//! table on the target is a failure; a differing class is reported.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::grammar::{Gen, Schema};
use super::{ANSWER_WITHIN, Failure, shorten};

/// What a statement produced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Rows or a command tag.
    Ok,
    /// An error, by SQLSTATE class (its first two characters).
    Error(String),
    /// No answer in time.
    Hang,
    /// The connection was lost.
    Lost,
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Class::Ok => f.write_str("ok"),
            Class::Error(c) => write!(f, "error {c}"),
            Class::Hang => f.write_str("hang"),
            Class::Lost => f.write_str("lost"),
        }
    }
}

/// Counts of one run.
#[derive(Debug, Default, Clone)]
pub struct SqlStats {
    /// Statements run on the target.
    pub statements: u64,
    /// Connections opened to the target.
    pub connections: u64,
    /// Answers by class on the target.
    pub classes: BTreeMap<String, u64>,
    /// Statements whose class differed from PostgreSQL's (result vs error).
    pub mismatches: u64,
    /// A few of them: statement, target class, PostgreSQL class.
    pub examples: Vec<(String, String, String)>,
}

/// Runs `sql` and classifies the answer.
pub async fn classify(client: &Client, sql: &str) -> Class {
    match tokio::time::timeout(ANSWER_WITHIN, client.simple_query(sql)).await {
        Err(_) => Class::Hang,
        Ok(Ok(_)) => Class::Ok,
        Ok(Err(e)) => match e.code() {
            Some(code) => Class::Error(code.code()[..2].to_string()),
            None if client.is_closed() => Class::Lost,
            None => Class::Error(format!("?? {e}")),
        },
    }
}

/// The probe table's fingerprint.
async fn probe(client: &Client) -> Option<String> {
    let msgs = tokio::time::timeout(
        ANSWER_WITHIN,
        client.simple_query("SELECT count(*), sum(v) FROM fuzz_probe"),
    )
    .await
    .ok()?
    .ok()?;
    msgs.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(format!("{:?}/{:?}", r.get(0), r.get(1))),
        _ => None,
    })
}

/// Creates the probe table (ten rows) and returns its fingerprint.
pub async fn create_probe(client: &Client) -> Result<String, String> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS fuzz_probe;
             CREATE TABLE fuzz_probe (id INT PRIMARY KEY, v INT);
             INSERT INTO fuzz_probe VALUES (0,0),(1,1),(2,2),(3,3),(4,4),(5,5),(6,6),(7,7),(8,8),(9,9)",
        )
        .await
        .map_err(|e| format!("cannot create the probe table: {e}"))?;
    probe(client)
        .await
        .ok_or_else(|| "cannot read the probe table".to_string())
}

/// Checks the probe table from a fresh connection.
pub async fn check_probe(client: &Client, expected: &str) -> Result<(), String> {
    match probe(client).await {
        Some(got) if got == expected => Ok(()),
        Some(got) => Err(format!(
            "the probe table changed: {got}, expected {expected}"
        )),
        None => Err("the probe table cannot be read (the node is down?)".into()),
    }
}

/// Where one seed runs: a way to open connections to the target, and
/// PostgreSQL for comparison.
pub struct Sides<'a> {
    /// Opens a connection to the target.
    pub connect:
        &'a (dyn Fn() -> futures::future::BoxFuture<'static, Result<Client, String>> + Sync),
    /// PostgreSQL, when comparing.
    pub postgres: Option<&'a Client>,
}

/// Runs one seed until `deadline`.
pub async fn run(sides: &Sides<'_>, seed: u64, deadline: Instant) -> Result<SqlStats, Failure> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = SqlStats::default();
    let fail = |case: u64, what: String, input: &str| Failure {
        seed,
        case,
        what,
        input: shorten(input, 300),
    };
    let mut client = (sides.connect)().await.map_err(|e| fail(0, e, ""))?;
    stats.connections += 1;
    let expected = create_probe(&client).await.map_err(|e| fail(0, e, ""))?;
    let schema = Schema::random(&mut rng);
    for stmt in schema.setup(&mut rng) {
        if let Some(pg) = sides.postgres {
            let _ = classify(pg, &stmt).await;
        }
        let class = classify(&client, &stmt).await;
        if class != Class::Ok {
            return Err(fail(0, format!("setup failed: {class}"), &stmt));
        }
    }
    let mut case = 0u64;
    while Instant::now() < deadline {
        let sql = Gen::new(&mut rng, &schema).statement();
        let class = classify(&client, &sql).await;
        stats.statements += 1;
        *stats.classes.entry(class.to_string()).or_default() += 1;
        match class {
            Class::Hang => {
                return Err(fail(
                    case,
                    format!("no answer within {}s", ANSWER_WITHIN.as_secs()),
                    &sql,
                ));
            }
            Class::Lost => {
                return Err(fail(
                    case,
                    "the connection was lost without an ErrorResponse".into(),
                    &sql,
                ));
            }
            _ => {}
        }
        if let Some(pg) = sides.postgres {
            let theirs = classify(pg, &sql).await;
            if (class == Class::Ok) != (theirs == Class::Ok) {
                stats.mismatches += 1;
                if stats.examples.len() < 8 {
                    stats.examples.push((
                        shorten(&sql, 160),
                        class.to_string(),
                        theirs.to_string(),
                    ));
                }
            }
        }
        case += 1;
        if case.is_multiple_of(50) {
            // A failed transaction or a lost session would hide later
            // answers: start afresh, and look at the probe table.
            client = (sides.connect)().await.map_err(|e| fail(case, e, &sql))?;
            stats.connections += 1;
            check_probe(&client, &expected)
                .await
                .map_err(|e| fail(case, e, &sql))?;
        }
    }
    check_probe(&client, &expected)
        .await
        .map_err(|e| fail(case, e, ""))?;
    Ok(stats)
}
