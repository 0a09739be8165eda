//! The document of a message, without a server: the verified TLS client subject is a field.

use std::time::SystemTime;

use mllp::charset::Charset;
use mllp::StoredMessage;
use mllp_mongodb::MongoStore;

#[test]
fn the_tls_subject_is_a_field_null_without_one() {
    let peer = "127.0.0.1:9".parse().unwrap();
    let text = "MSH|^~\\&|LAB|HOSP||WARD|2026||ORU^R01|ID1|P|2.5\r";
    let plain = StoredMessage::new(text, peer, Charset::UTF_8, SystemTime::now());
    let doc = MongoStore::document(&plain);
    assert!(
        doc.get("tls_subject")
            .is_some_and(|v| v.as_null().is_some()),
        "{doc}"
    );
    let signed = plain.with_tls_subject(Some("CN=lab,O=Hospital"));
    let doc = MongoStore::document(&signed);
    assert_eq!(doc.get_str("tls_subject"), Ok("CN=lab,O=Hospital"));
}
