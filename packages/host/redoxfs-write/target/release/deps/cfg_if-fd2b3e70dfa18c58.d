/work/main/packages/host/redoxfs-write/target/release/deps/cfg_if-fd2b3e70dfa18c58.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/work/main/packages/host/redoxfs-write/target/release/deps/libcfg_if-fd2b3e70dfa18c58.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/work/main/packages/host/redoxfs-write/target/release/deps/libcfg_if-fd2b3e70dfa18c58.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs:
