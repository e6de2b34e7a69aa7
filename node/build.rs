//! Rebuilds the node library when a file it embeds from outside this
//! package changes (the OpenAPI document and the patient app). Cargo records
//! such files by absolute path, so with one target directory shared by
//! several checkouts (this repository and CI's clean clone) a build could
//! otherwise keep the binary made from another checkout's copies.

fn main() {
    for file in [
        "../docs/openapi.json",
        "../client-sdk/web/index.html",
        "../client-sdk/web/app.js",
        "../client-sdk/web/api.js",
        "../client-sdk/web/bcs.js",
        "../client-sdk/web/qr.js",
        "../client-sdk/web/style.css",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
}
