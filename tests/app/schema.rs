//! The two migration histories, `migrations/sqlite` and `migrations/postgres`,
//! build the same schema: one `src/db/schema.rs` serves both, so a column or
//! an index added to one history and forgotten in the other would otherwise
//! show only on that backend, in production. Each history is applied to a
//! fresh database and the schema is read back from the database itself
//! (SQLite's `sqlite_master` and pragmas, PostgreSQL's `information_schema`
//! and `pg_index`), then compared as lines of facts: tables, columns with
//! their type family and nullability, and indexes by table, columns in order
//! and uniqueness (primary keys and UNIQUE constraints count as unique
//! indexes; index names are not compared, SQLite makes its own up). Column
//! order, defaults and foreign keys are not compared.

use std::collections::BTreeSet;

use diesel::RunQueryDsl as _;
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use gatehouse_core::db::{self, DbConnection, PoolOptions};

use crate::helpers::*;

/// Differences between the two histories that exist today, each with the
/// reason it is accepted: (the line the test prints, why). A line listed here
/// that no longer differs fails the test too, so the list only shrinks.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
#[ignore = "needs TEST_DATABASE_URL"]
fn both_migration_histories_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = migrated_schema(&TestDatabase::sqlite(dir.path()));
    let postgres = migrated_schema(&TestDatabase::postgres());
    for (name, schema) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        assert!(
            schema.contains("table users"),
            "nothing read back from {name}: {schema:#?}"
        );
    }

    let differences: BTreeSet<String> = sqlite
        .difference(&postgres)
        .map(|fact| format!("only in migrations/sqlite: {fact}"))
        .chain(
            postgres
                .difference(&sqlite)
                .map(|fact| format!("only in migrations/postgres: {fact}")),
        )
        .collect();
    let known: BTreeSet<String> = KNOWN_DIFFERENCES
        .iter()
        .map(|(line, _)| (*line).to_owned())
        .collect();

    let unexpected: Vec<_> = differences.difference(&known).collect();
    let fixed: Vec<_> = known.difference(&differences).collect();
    assert!(
        unexpected.is_empty(),
        "the migration histories build different schemas:\n  {}",
        join_lines(&unexpected)
    );
    assert!(
        fixed.is_empty(),
        "no longer different, remove from KNOWN_DIFFERENCES:\n  {}",
        join_lines(&fixed)
    );
}

fn join_lines(lines: &[&String]) -> String {
    lines
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Applies the backend's migrations to `database` the way start-up does, and
/// describes the schema it then has.
fn migrated_schema(database: &TestDatabase) -> BTreeSet<String> {
    let options = PoolOptions {
        size: 1,
        ..PoolOptions::default()
    };
    let pool = db::build_pool(&database.url, options).unwrap();
    db::run_migrations(&pool).unwrap();
    let mut conn = pool.get_blocking().unwrap();
    match &mut *conn {
        DbConnection::Sqlite(c) => sqlite_schema(c),
        DbConnection::Postgresql(c) => postgres_schema(c),
    }
}

/// The type a column holds, whatever the backend calls it.
fn type_family(declared: &str) -> String {
    let declared = declared.trim().to_ascii_lowercase();
    match declared.as_str() {
        "text" | "varchar" | "character varying" => "text",
        "integer" | "int" | "int4" => "integer",
        "bigint" | "int8" => "bigint",
        "boolean" | "bool" => "boolean",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        other => other,
    }
    .to_owned()
}

fn column_fact(table: &str, column: &str, declared: &str, nullable: bool) -> String {
    let null = if nullable { "NULL" } else { "NOT NULL" };
    format!("column {table}.{column} {} {null}", type_family(declared))
}

fn index_fact(table: &str, columns: &[String], unique: bool, partial: bool) -> String {
    let unique = if unique { " UNIQUE" } else { "" };
    let partial = if partial { " (partial)" } else { "" };
    format!("index {table} ({}){unique}{partial}", columns.join(", "))
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    /// The column's place in the primary key, from 1; 0 when not in it.
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(diesel::QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint) or `pk` (primary key).
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = Bool)]
    partial: bool,
}

#[derive(diesel::QueryableByName)]
struct IndexColumn {
    /// NULL for an expression.
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

fn sqlite_schema(conn: &mut diesel::SqliteConnection) -> BTreeSet<String> {
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    let mut facts = BTreeSet::new();
    for Name { name: table } in tables {
        facts.insert(format!("table {table}"));
        let columns: Vec<SqliteColumn> = diesel::sql_query(
            "SELECT name, type AS declared, \"notnull\" AS not_null, pk \
             FROM pragma_table_info(?)",
        )
        .bind::<Text, _>(&table)
        .load(conn)
        .unwrap();
        let mut primary_key: Vec<(i32, String)> = Vec::new();
        for column in &columns {
            // An INTEGER PRIMARY KEY is the rowid, which is never NULL.
            let rowid = column.pk > 0
                && column.declared.eq_ignore_ascii_case("integer")
                && columns.iter().filter(|c| c.pk > 0).count() == 1;
            let nullable = !column.not_null && !rowid;
            facts.insert(column_fact(
                &table,
                &column.name,
                &column.declared,
                nullable,
            ));
            if column.pk > 0 {
                primary_key.push((column.pk, column.name.clone()));
            }
        }
        // The primary key from the table's columns: a rowid key has no index
        // in `index_list`, so its `pk` entry is skipped below for every table.
        if !primary_key.is_empty() {
            primary_key.sort();
            let columns: Vec<String> = primary_key.into_iter().map(|(_, c)| c).collect();
            facts.insert(index_fact(&table, &columns, true, false));
        }
        let indexes: Vec<SqliteIndex> = diesel::sql_query(
            "SELECT name, \"unique\" AS is_unique, origin, partial FROM pragma_index_list(?)",
        )
        .bind::<Text, _>(&table)
        .load(conn)
        .unwrap();
        for index in indexes.iter().filter(|i| i.origin != "pk") {
            let columns: Vec<IndexColumn> =
                diesel::sql_query("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind::<Text, _>(&index.name)
                    .load(conn)
                    .unwrap();
            let columns: Vec<String> = columns
                .into_iter()
                .map(|c| c.name.unwrap_or_else(|| "<expression>".to_owned()))
                .collect();
            facts.insert(index_fact(&table, &columns, index.is_unique, index.partial));
        }
    }
    facts
}

#[derive(diesel::QueryableByName)]
struct PostgresColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(diesel::QueryableByName)]
struct PostgresIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    /// The indexed columns in order, comma-separated.
    #[diesel(sql_type = Nullable<Text>)]
    columns: Option<String>,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Bool)]
    partial: bool,
}

fn postgres_schema(conn: &mut diesel::PgConnection) -> BTreeSet<String> {
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    let columns: Vec<PostgresColumn> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
         data_type::text AS data_type, is_nullable = 'YES' AS nullable \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    // Primary keys and UNIQUE constraints are unique indexes here too.
    let indexes: Vec<PostgresIndex> = diesel::sql_query(
        "SELECT t.relname::text AS table_name, \
           (SELECT string_agg(coalesce(a.attname::text, '<expression>'), ',' ORDER BY k.ord) \
              FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
              LEFT JOIN pg_attribute a \
                ON a.attrelid = ix.indrelid AND a.attnum = k.attnum AND k.attnum <> 0) \
             AS columns, \
           ix.indisunique AS is_unique, ix.indpred IS NOT NULL AS partial \
         FROM pg_index ix \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND t.relname <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();

    let mut facts: BTreeSet<String> = tables
        .into_iter()
        .map(|t| format!("table {}", t.name))
        .collect();
    for c in columns {
        facts.insert(column_fact(
            &c.table_name,
            &c.column_name,
            &c.data_type,
            c.nullable,
        ));
    }
    for index in indexes {
        let columns: Vec<String> = index
            .columns
            .unwrap_or_default()
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        facts.insert(index_fact(
            &index.table_name,
            &columns,
            index.is_unique,
            index.partial,
        ));
    }
    facts
}
