/work/main/packages/host/redoxfs-write/target/release/deps/crypto_common-c4474e6f31e4ccf0.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/crypto-common-0.1.7/src/lib.rs

/work/main/packages/host/redoxfs-write/target/release/deps/libcrypto_common-c4474e6f31e4ccf0.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/crypto-common-0.1.7/src/lib.rs

/work/main/packages/host/redoxfs-write/target/release/deps/libcrypto_common-c4474e6f31e4ccf0.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/crypto-common-0.1.7/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/crypto-common-0.1.7/src/lib.rs:
