//! Sprig's random key and certificate generators, checked where bytes cannot be compared:
//! the real `openssl` parses strata's keys and certificates, verifies signed ones against
//! their CA and reads back subject, SANs, constraints and validity; Go's Sprig reads strata's
//! keys and CAs (and re-encodes the keys to the same bytes), and strata reads Go's.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use strata_template::{Context, render};

use super::differential::go_render_texts;

fn ctx(dir: &Path) -> Context {
    Context {
        dir: dir.to_path_buf(),
        ..Context::default()
    }
}

/// Renders with strata; the template must succeed.
fn ours(template: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    match render("t", template, &ctx(dir.path())) {
        Ok(r) => r.text,
        Err(e) => panic!("strata fails on {template:?}: {e}"),
    }
}

/// Renders with Go; each template must succeed.
fn go(templates: &[String]) -> Vec<String> {
    go_render_texts(templates.iter().map(String::as_str))
        .into_iter()
        .zip(templates)
        .map(|(out, t)| {
            assert!(out.ok, "Go fails on {t:?}: {}", out.err);
            out.out
        })
        .collect()
}

/// Runs `openssl ARGS` in `dir`; returns stdout, panicking with stderr on failure.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `openssl ARGS` succeeds.
fn openssl_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs")
        .status
        .success()
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Splits a rendering of parts joined by `@@`.
fn parts(text: &str) -> Vec<String> {
    text.split("@@").map(str::to_string).collect()
}

#[test]
fn strata_keys_are_read_by_openssl_and_re_encoded_by_go_to_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kinds = [
        ("rsa", "RSA PRIVATE KEY", "rsa"),
        ("ecdsa", "EC PRIVATE KEY", "ec"),
        ("ed25519", "PRIVATE KEY", "pkey"),
        ("dsa", "DSA PRIVATE KEY", "dsa"),
    ];
    let mut go_templates = Vec::new();
    let mut keys = Vec::new();
    for (kind, pem_type, tool) in kinds {
        let key = ours(&format!("{{{{ genPrivateKey {kind:?} }}}}"));
        assert!(
            key.starts_with(&format!("-----BEGIN {pem_type}-----\n"))
                && key.ends_with(&format!("-----END {pem_type}-----\n")),
            "{kind}: {key}"
        );
        let file = format!("{kind}.key");
        std::fs::write(dir.path().join(&file), &key).expect("write key");
        let text = openssl(dir.path(), &[tool, "-in", &file, "-noout", "-text"]);
        match kind {
            "rsa" => {
                assert!(text.contains("Private-Key: (4096 bit"), "{text}");
                openssl(dir.path(), &["rsa", "-in", &file, "-check", "-noout"]);
            }
            "ecdsa" => {
                assert!(text.contains("NIST CURVE: P-256"), "{text}");
                openssl(dir.path(), &["ec", "-in", &file, "-check", "-noout"]);
            }
            "ed25519" => assert!(text.contains("ED25519 Private-Key"), "{text}"),
            _ => assert!(text.contains("Private-Key: (2048 bit"), "{text}"),
        }
        // Go's Sprig parses the key and writes it back in its own format: the same bytes.
        go_templates.push(format!(
            "{{{{ (buildCustomCert {:?} {:?}).Key }}}}",
            b64(&ours("{{ (genCA \"c\" 1).Cert }}")),
            b64(&key)
        ));
        if kind != "dsa" {
            go_templates.push(format!(
                "{{{{ (genSelfSignedCertWithKey \"k\" nil nil 1 {key:?}).Key }}}}"
            ));
        }
        keys.push((kind, key));
    }
    let outs = go(&go_templates);
    let mut outs = outs.iter();
    for (kind, key) in &keys {
        assert_eq!(
            outs.next().expect("an output"),
            key,
            "{kind}: buildCustomCert"
        );
        if *kind != "dsa" {
            assert_eq!(
                outs.next().expect("an output"),
                key,
                "{kind}: Go's re-encoding"
            );
        }
    }
}

#[test]
fn go_keys_come_back_from_strata_byte_for_byte() {
    let kinds = ["rsa", "ecdsa", "ed25519"];
    let templates: Vec<String> = kinds
        .iter()
        .map(|k| format!("{{{{ genPrivateKey {k:?} }}}}"))
        .collect();
    for (kind, key) in kinds.iter().zip(go(&templates)) {
        let again = ours(&format!(
            "{{{{ (genSelfSignedCertWithKey \"k\" nil nil 1 {key:?}).Key }}}}"
        ));
        assert_eq!(again, key, "{kind}");
    }
}

#[test]
fn signed_certificates_verify_against_their_ca_in_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "rsa",
            "genCA \"Strata Test CA\" 30",
            "genSignedCert \"svc.example\" (list \"10.0.0.7\" \"::1\") (list \"svc.example\" \"alt.example\") 10 $ca",
        ),
        (
            "ecdsa",
            "genCAWithKey \"Strata Test CA\" 30 (genPrivateKey \"ecdsa\")",
            "genSignedCertWithKey \"svc.example\" (list \"10.0.0.7\" \"::1\") (list \"svc.example\" \"alt.example\") 10 $ca (genPrivateKey \"ed25519\")",
        ),
        (
            "ed25519",
            "genCAWithKey \"Strata Test CA\" 30 (genPrivateKey \"ed25519\")",
            "genSignedCertWithKey \"svc.example\" (list \"10.0.0.7\" \"::1\") (list \"svc.example\" \"alt.example\") 10 $ca (genPrivateKey \"ecdsa\")",
        ),
    ];
    for (kind, ca, leaf) in cases {
        let out = parts(&ours(&format!(
            "{{{{ $ca := {ca} }}}}{{{{ $c := {leaf} }}}}{{{{ $ca.Cert }}}}@@{{{{ $c.Cert }}}}@@{{{{ $c.Key }}}}"
        )));
        let (ca_pem, cert_pem, key_pem) = (&out[0], &out[1], &out[2]);
        std::fs::write(dir.path().join("ca.crt"), ca_pem).expect("write");
        std::fs::write(dir.path().join("tls.crt"), cert_pem).expect("write");
        std::fs::write(dir.path().join("tls.key"), key_pem).expect("write");
        let verified = openssl(dir.path(), &["verify", "-CAfile", "ca.crt", "tls.crt"]);
        assert_eq!(verified.trim(), "tls.crt: OK", "{kind}");

        let ca_text = openssl(dir.path(), &["x509", "-in", "ca.crt", "-noout", "-text"]);
        assert!(
            ca_text.contains("Subject: CN = Strata Test CA"),
            "{kind}: {ca_text}"
        );
        assert!(ca_text.contains("CA:TRUE"), "{kind}: {ca_text}");
        assert!(
            ca_text.contains("Digital Signature, Key Encipherment, Certificate Sign"),
            "{kind}: {ca_text}"
        );
        let text = openssl(dir.path(), &["x509", "-in", "tls.crt", "-noout", "-text"]);
        assert!(
            text.contains("Issuer: CN = Strata Test CA"),
            "{kind}: {text}"
        );
        assert!(text.contains("Subject: CN = svc.example"), "{kind}: {text}");
        assert!(text.contains("CA:FALSE"), "{kind}: {text}");
        assert!(
            text.contains(
                "DNS:svc.example, DNS:alt.example, IP Address:10.0.0.7, IP Address:0:0:0:0:0:0:0:1"
            ),
            "{kind}: {text}"
        );
        assert!(
            text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
            "{kind}: {text}"
        );
        // Valid for 10 days from now: still valid in 9 days, expired in 11.
        let day = 86_400;
        assert!(
            openssl_ok(
                dir.path(),
                &[
                    "x509",
                    "-in",
                    "tls.crt",
                    "-noout",
                    "-checkend",
                    &(9 * day).to_string()
                ]
            ),
            "{kind}"
        );
        assert!(
            !openssl_ok(
                dir.path(),
                &[
                    "x509",
                    "-in",
                    "tls.crt",
                    "-noout",
                    "-checkend",
                    &(11 * day).to_string()
                ]
            ),
            "{kind}"
        );
        assert!(
            openssl_ok(
                dir.path(),
                &[
                    "x509",
                    "-in",
                    "ca.crt",
                    "-noout",
                    "-checkend",
                    &(29 * day).to_string()
                ]
            ),
            "{kind}"
        );
        assert!(
            !openssl_ok(
                dir.path(),
                &[
                    "x509",
                    "-in",
                    "ca.crt",
                    "-noout",
                    "-checkend",
                    &(31 * day).to_string()
                ]
            ),
            "{kind}"
        );
        // The key is the certificate's.
        let cert_pub = openssl(dir.path(), &["x509", "-in", "tls.crt", "-noout", "-pubkey"]);
        let key_pub = openssl(dir.path(), &["pkey", "-in", "tls.key", "-pubout"]);
        assert_eq!(cert_pub, key_pub, "{kind}");
    }

    // A self-signed certificate verifies against itself.
    let self_signed =
        ours("{{ (genSelfSignedCert \"self.example\" nil (list \"self.example\") 3).Cert }}");
    std::fs::write(dir.path().join("self.crt"), &self_signed).expect("write");
    let verified = openssl(dir.path(), &["verify", "-CAfile", "self.crt", "self.crt"]);
    assert_eq!(verified.trim(), "self.crt: OK");
}

#[test]
fn go_signs_with_a_strata_ca_and_strata_with_a_go_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Go's Sprig signs with strata's CA.
    let ca = parts(&ours(
        "{{ $ca := genCA \"strata-ca\" 5 }}{{ $ca.Cert }}@@{{ $ca.Key }}",
    ));
    let go_leaf = go(&[format!(
        "{{{{ $ca := buildCustomCert {:?} {:?} }}}}{{{{ (genSignedCert \"go-leaf\" nil (list \"go.example\") 5 $ca).Cert }}}}",
        b64(&ca[0]),
        b64(&ca[1])
    )]);
    std::fs::write(dir.path().join("strata-ca.crt"), &ca[0]).expect("write");
    std::fs::write(dir.path().join("go-leaf.crt"), &go_leaf[0]).expect("write");
    let verified = openssl(
        dir.path(),
        &["verify", "-CAfile", "strata-ca.crt", "go-leaf.crt"],
    );
    assert_eq!(verified.trim(), "go-leaf.crt: OK");

    // strata signs with Go's CA.
    let go_ca =
        parts(&go(&["{{ $ca := genCA \"go-ca\" 5 }}{{ $ca.Cert }}@@{{ $ca.Key }}".to_string()])[0]);
    let leaf = ours(&format!(
        "{{{{ $ca := buildCustomCert {:?} {:?} }}}}{{{{ (genSignedCert \"strata-leaf\" nil nil 5 $ca).Cert }}}}",
        b64(&go_ca[0]),
        b64(&go_ca[1])
    ));
    std::fs::write(dir.path().join("go-ca.crt"), &go_ca[0]).expect("write");
    std::fs::write(dir.path().join("strata-leaf.crt"), &leaf).expect("write");
    let verified = openssl(
        dir.path(),
        &["verify", "-CAfile", "go-ca.crt", "strata-leaf.crt"],
    );
    assert_eq!(verified.trim(), "strata-leaf.crt: OK");
}

#[test]
fn aes_ciphertexts_cross_between_go_and_strata() {
    let secret = "a plain text with ünïcode and more than one block";
    let ours_sealed = ours(&format!("{{{{ encryptAES \"pw\" {secret:?} }}}}"));
    let go_sealed = go(&[format!("{{{{ encryptAES \"pw\" {secret:?} }}}}")]);
    let go_opened = go(&[format!("{{{{ decryptAES \"pw\" {ours_sealed:?} }}}}")]);
    assert_eq!(go_opened[0], secret);
    assert_eq!(
        ours(&format!("{{{{ decryptAES \"pw\" {:?} }}}}", go_sealed[0])),
        secret
    );
}
