/work/main/packages/host/redoxfs-write/target/release/redoxfs-write: /work/main/packages/host/redoxfs-write/src/main.rs
