//! Where catalog and system records live in the keyspace.
//!
//! ```text
//! 0x02 "desc_id"                       -> next descriptor id (u64 BE)
//! 0x02 "catalog_version"               -> catalog version (u64 BE)
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
