/work/main/packages/host/redoxfs-write/target/release/deps/redoxfs_write-774d37b96b4c8b3f.d: src/main.rs

/work/main/packages/host/redoxfs-write/target/release/deps/redoxfs_write-774d37b96b4c8b3f: src/main.rs

src/main.rs:
