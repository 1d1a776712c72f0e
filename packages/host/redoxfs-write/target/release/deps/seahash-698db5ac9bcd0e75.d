/work/main/packages/host/redoxfs-write/target/release/deps/seahash-698db5ac9bcd0e75.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/buffer.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/helper.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/reference.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/stream.rs

/work/main/packages/host/redoxfs-write/target/release/deps/libseahash-698db5ac9bcd0e75.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/buffer.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/helper.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/reference.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/stream.rs

/work/main/packages/host/redoxfs-write/target/release/deps/libseahash-698db5ac9bcd0e75.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/buffer.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/helper.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/reference.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/stream.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/buffer.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/helper.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/reference.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/seahash-4.1.0/src/stream.rs:
