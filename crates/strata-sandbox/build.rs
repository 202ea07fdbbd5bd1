//! Compiles the seccomp profile (src/seccomp_profile.rs) into the BPF program the crate
//! embeds (`$OUT_DIR/seccomp.bpf`, libseccomp's `seccomp_export_bpf` output).

#[path = "src/seccomp_profile.rs"]
mod seccomp_profile;

fn main() {
    println!("cargo::rerun-if-changed=src/seccomp_profile.rs");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let filter = seccomp_profile::filter().unwrap_or_else(|e| panic!("{e}"));
    let path = out.join("seccomp.bpf");
    let file =
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    filter
        .export_bpf(&file)
        .unwrap_or_else(|e| panic!("export the seccomp filter as BPF: {e}"));
}
