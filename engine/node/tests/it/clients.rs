//! Clients no one here wrote: psql's `\d` and `\di`, SQLAlchemy's
//! inspector (Alembic's autogenerate reads the same) and
//! `information_schema`'s constraint views describe a schema through the
//! system catalogs; SQLAlchemy's ORM runs an application's statements.
//! psql comes from `ci/install-deps.sh`, SQLAlchemy from the Python
//! environment it makes (`target/client-venv`).

use std::path::PathBuf;
use std::process::Command;

use crate::{TestNode, text_rows};

const SCHEMA: &str = "
    CREATE TABLE customers (id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT);
    CREATE TABLE orders (
        id BIGINT PRIMARY KEY,
        customer_id BIGINT REFERENCES customers ON DELETE CASCADE,
        amount INT CHECK (amount > 0)
    );
    CREATE INDEX orders_customer_amount_idx ON orders (customer_id, amount DESC);";

fn psql(addr: &str, command: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("psql")
        .args([
            "-X", "-h", host, "-p", port, "-U", "holo", "-d", "holo", "-c", command,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (ci/install-deps.sh installs postgresql-client)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "psql {command}: {stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn psql_and_sqlalchemy_describe_keys_indexes_and_constraints() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(SCHEMA).await.unwrap();

    let d = psql(&node.addr, "\\d orders");
    for want in [
        "Indexes:",
        "\"orders_pkey\" PRIMARY KEY, btree (id)",
        "\"orders_customer_amount_idx\" btree (customer_id, amount DESC)",
        "Check constraints:",
        "\"orders_amount_check\" CHECK (amount > 0)",
        "Foreign-key constraints:",
        "\"orders_customer_id_fkey\" FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE",
    ] {
        assert!(d.contains(want), "\\d orders lacks {want:?}:\n{d}");
    }
    let d = psql(&node.addr, "\\d customers");
    for want in [
        "\"customers_email_key\" UNIQUE CONSTRAINT, btree (email)",
        "Referenced by:",
        "TABLE \"orders\" CONSTRAINT \"orders_customer_id_fkey\" FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE",
    ] {
        assert!(d.contains(want), "\\d customers lacks {want:?}:\n{d}");
    }
    let di = psql(&node.addr, "\\di");
    for want in [
        "customers_pkey",
        "customers_email_key",
        "orders_pkey",
        "orders_customer_amount_idx",
    ] {
        assert!(di.contains(want), "\\di lacks {want}:\n{di}");
    }

    // information_schema, as drivers read it.
    let rows = text_rows(
        &c,
        "SELECT constraint_name, constraint_type FROM information_schema.table_constraints
          WHERE table_name = 'orders' ORDER BY constraint_name",
    )
    .await;
    let got: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    let want = [
        ("orders_amount_check", "CHECK"),
        ("orders_customer_id_fkey", "FOREIGN KEY"),
        ("orders_pkey", "PRIMARY KEY"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    let rows = text_rows(
        &c,
        "SELECT k.column_name, r.unique_constraint_name, r.delete_rule
           FROM information_schema.key_column_usage k
           JOIN information_schema.referential_constraints r ON r.constraint_name = k.constraint_name
          WHERE k.table_name = 'orders'",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            Some("customer_id".to_string()),
            Some("customers_pkey".to_string()),
            Some("CASCADE".to_string())
        ]]
    );

    // SQLAlchemy's inspector.
    python_client(&node.addr, "inspect_schema.py");
}

/// Runs `engine/node/tests/clients/<script>` with the URL of the node at
/// `addr`, in the Python environment of `ci/install-deps.sh`; it must
/// succeed.
fn python_client(addr: &str, script: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/client-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run ci/install-deps.sh",
        python.display()
    );
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new(&python)
        .arg(root.join("engine/node/tests/clients").join(script))
        .arg(format!("postgresql+psycopg2://holo@{host}:{port}/holo"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn sqlalchemy_orm_runs_unchanged() {
    // Autoincrement keys (SERIAL), relationships, batched inserts that
    // learn their keys through RETURNING, updates, cascaded deletes.
    let node = TestNode::start();
    python_client(&node.addr, "orm_crud.py");
}
