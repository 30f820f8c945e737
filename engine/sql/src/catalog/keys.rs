//! Where catalog and system records live in the keyspace.
//!
//! ```text
//! 0x02 "desc_id"                       -> next descriptor id (u64 BE)
//! 0x02 "catalog_version"               -> catalog version (u64 BE)
//! 0x02 "table_stats/" <id: u32 BE>     -> statistics of table `id` (JSON)
//! 0x02 "stats_version"                 -> bumped by every ANALYZE (u64 BE)
//! 0x02 "seq/" <id: u32 BE>             -> sequence `id`'s last value handed
//!                                         out (i64 BE) and whether it was
//!                                         (1 byte)
//! 0x03 0x01 <id: u32 BE>               -> descriptor (JSON)
//! 0x03 0x02 <parent: u32 BE> <name>    -> descriptor id (u32 BE)
//! ```
//!
//! Databases have parent 0, schemas their database, tables their schema.

/// First byte of system keys.
pub const SYSTEM_PREFIX: u8 = 0x02;
/// First byte of catalog keys.
pub const CATALOG_PREFIX: u8 = 0x03;
const DESCRIPTOR_TAG: u8 = 0x01;
const NAMESPACE_TAG: u8 = 0x02;

/// Id of the single database.
pub const DATABASE_ID: u32 = 1;
/// Id of its `public` schema.
pub const PUBLIC_SCHEMA_ID: u32 = 2;
/// First id handed to user objects.
pub const FIRST_USER_ID: u32 = 100;
/// Name of the database.
pub const DATABASE_NAME: &str = "holo";
/// Name of the default schema.
pub const PUBLIC_SCHEMA_NAME: &str = "public";

/// The descriptor id allocator key.
pub fn desc_id_seq_key() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"desc_id");
    k
}

/// The catalog version key.
pub fn catalog_version_key() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"catalog_version");
    k
}

/// Key of descriptor `id`.
pub fn descriptor_key(id: u32) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, DESCRIPTOR_TAG];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Prefix of every descriptor key.
pub fn descriptor_prefix() -> Vec<u8> {
    vec![CATALOG_PREFIX, DESCRIPTOR_TAG]
}

/// Key of the name `name` under `parent_id`.
pub fn namespace_key(parent_id: u32, name: &str) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, NAMESPACE_TAG];
    k.extend_from_slice(&parent_id.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of every table-statistics key.
pub fn table_stats_prefix() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"table_stats/");
    k
}

/// Key of table `id`'s statistics.
pub fn table_stats_key(id: u32) -> Vec<u8> {
    let mut k = table_stats_prefix();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The statistics version key: moved by every ANALYZE, so nodes reload
/// statistics without a catalog (schema) version change.
pub fn stats_version_key() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"stats_version");
    k
}

/// Key of sequence `id`'s state (see the module's table).
pub fn sequence_value_key(id: u32) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"seq/");
    k.extend_from_slice(&id.to_be_bytes());
    k
}
