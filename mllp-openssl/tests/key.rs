//! Password-protected private keys, made by the `openssl` command in both PEM forms: decrypted
//! into PKCS#8 PEM that the built-in TLS and the OpenSSL acceptor both take; a wrong, overlong
//! or NUL-holding password is an error that does not show it, never a panic.

use mllp::{Identity, TlsErrorKind, TlsServer, TlsServerConfig};
use mllp_openssl::{decrypt_key_pem, is_encrypted_key_pem, Acceptor, AcceptorConfig};
use mllp_testkit::openssl_cmd::{encrypt_key, KeyForm};
use mllp_testkit::{cert, scratch_dir};

const PASSWORD: &str = "correct horse";

fn config_error(result: mllp::Result<Vec<u8>>) -> String {
    match result {
        Err(mllp::Error::Tls(e)) => {
            assert_eq!(e.kind(), TlsErrorKind::Config, "{e}");
            e.to_string()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn both_encrypted_forms_decrypt_into_a_key_every_acceptor_takes() {
    let dir = scratch_dir("openssl-encrypted-keys");
    for form in [KeyForm::Pkcs8, KeyForm::Traditional] {
        let path = dir.join(format!("{form:?}.key"));
        encrypt_key("server", &path, PASSWORD, form);
        let pem = std::fs::read(&path).unwrap();
        assert!(is_encrypted_key_pem(&pem), "{form:?}");

        let key = decrypt_key_pem(&pem, PASSWORD.as_bytes()).unwrap();
        let text = String::from_utf8(key.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        assert!(!is_encrypted_key_pem(&key));
        let identity = Identity::Pem {
            cert: cert("server.pem"),
            key,
        };
        // The OpenSSL acceptor checks that the key matches the certificate; the built-in one
        // (native-tls) takes unencrypted PKCS#8 only.
        Acceptor::new(&AcceptorConfig::new(identity.clone())).unwrap();
        TlsServer::new(&TlsServerConfig::new(identity)).unwrap();
        // Encrypted as it is, native-tls refuses it.
        let encrypted = Identity::Pem {
            cert: cert("server.pem"),
            key: pem.clone(),
        };
        assert!(TlsServer::new(&TlsServerConfig::new(encrypted)).is_err());

        let text = config_error(decrypt_key_pem(&pem, b"wrong horse"));
        assert!(
            text.contains("wrong password") && !text.contains("horse"),
            "{text}"
        );
        let text = config_error(decrypt_key_pem(&pem, b"correct\0horse"));
        assert!(text.contains("wrong password"), "{text}");
        let text = config_error(decrypt_key_pem(&pem, &[b'x'; 5000]));
        assert!(text.contains("longer than 1024 bytes"), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unencrypted_key_is_converted_and_anything_else_refused() {
    let plain = cert("server.key");
    assert!(!is_encrypted_key_pem(&plain));
    let key = decrypt_key_pem(&plain, b"unused").unwrap();
    assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
    let text = config_error(decrypt_key_pem(&cert("server.pem"), b"x"));
    assert!(text.contains("not a PEM private key"), "{text}");
}
