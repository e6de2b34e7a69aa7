//! Rebuilds the node library when a file it embeds from outside this
//! package changes (the OpenAPI document and the patient app), and builds
//! the patient app's SM2/SM3 module (`app-crypto`) to WebAssembly for it to
//! embed. Cargo records such files by absolute path, so with one target
//! directory shared by several checkouts (this repository and CI's clean
//! clone) a build could otherwise keep the binary made from another
//! checkout's copies.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    for file in [
        "../docs/openapi.json",
        "../client-sdk/web/index.html",
        "../client-sdk/web/app.js",
        "../client-sdk/web/api.js",
        "../client-sdk/web/bcs.js",
        "../client-sdk/web/suite.js",
        "../client-sdk/web/qr.js",
        "../client-sdk/web/style.css",
        "../app-crypto/src",
        "../app-crypto/Cargo.toml",
        // The module's profile (`app-wasm`) and the dependencies' versions.
        "../Cargo.toml",
        "../Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    build_app_crypto();
}

/// Builds `app-crypto` for `wasm32-unknown-unknown` with a cargo of its own
/// (one build script cannot ask its cargo for another target) and copies
/// the module to `OUT_DIR/app-crypto.wasm`.
fn build_app_crypto() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest
        .parent()
        .expect("node/ is in the workspace")
        .to_path_buf();
    // Beside the outer build's profiles, never inside them: the outer cargo
    // holds their locks while this runs.
    // An absolute path, so that the inner cargo (run in the workspace) and
    // the copy below (run here) mean the same directory.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"))
        .join("app-crypto");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args([
            "build",
            "--locked",
            "--package",
            "medledger-app-crypto",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "app-wasm",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // What the outer cargo set for this build (its target, flags, and
    // clippy's wrapper under `cargo clippy`) is not for the module.
    for variable in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        command.env_remove(variable);
    }
    let output = command
        .output()
        .expect("could not run cargo for the app's WebAssembly module");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-unknown-unknown") {
            "\nThe patient app's SM2 module needs Rust's WebAssembly target: \
             rustup target add wasm32-unknown-unknown (scripts/env.sh's \
             install_build_prerequisites does it)."
        } else {
            ""
        };
        panic!("building app-crypto for wasm32-unknown-unknown failed:\n{stderr}{hint}");
    }
    let module = target_dir.join("wasm32-unknown-unknown/app-wasm/medledger_app_crypto.wasm");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::copy(&module, out.join("app-crypto.wasm"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", module.display()));
}
