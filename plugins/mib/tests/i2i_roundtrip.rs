//! Every I2I message survives the trip through a bottle file unchanged.
#![allow(clippy::unwrap_used)]

use datum_plugin_mib::bottle::{Bottle, Priority};
use datum_plugin_mib::i2i::{I2iType, Message};
use proptest::prelude::*;
use serde_json::Value;

fn agent() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}"
}

/// Recipients as a hostile peer would send them, honest ones among them.
fn any_recipient() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => agent(),
        1 => Just("all".to_owned()),
        1 => prop::sample::select(vec![
            "..", "../x", "/etc/passwd", "a/b", "bob/../../x", "Bob", "-", "0abc", "",
            "x\u{1b}[2J", "all/../x", "for-bob", "bob\n", "b\u{202e}ob",
        ])
        .prop_map(str::to_owned),
        2 => "[a-zA-Z0-9./\\ _-]{0,12}",
        1 => any::<String>(),
    ]
}

/// Any JSON value (finite numbers only: JSON has no NaN).
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        (
            prop::sample::select(I2iType::ALL.to_vec()),
            prop::option::of(any::<u8>()),
            prop_oneof!["[0-9]{8}T[0-9a-z-]{1,30}", any::<String>()],
            agent(),
            prop_oneof![agent(), Just("all".to_owned())],
        ),
        (
            0u64..253_402_300_799_999,
            // Subjects are one printable line (control characters are refused, not lost).
            prop::option::of("[^\\p{Cc}\u{202A}-\u{202E}\u{2066}-\u{2069}]{0,40}[a-z][^\\p{Cc}\u{202A}-\u{202E}\u{2066}-\u{2069}]{0,40}"),
            prop::sample::select(vec![Priority::Low, Priority::Normal, Priority::High]),
            prop::option::of(prop_oneof!["[a-z0-9-]{1,20}", any::<String>()]),
            json(),
        ),
    )
        .prop_map(|((kind, v, id, from, to), (timestamp, subject, priority, reply_to, body))| {
            Message { v, kind, id, from, to, timestamp, subject, priority, reply_to, body }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn i2i_to_bottle_and_back_is_lossless(m in message()) {
        let file = m.to_bottle().unwrap().render();
        let bottle = Bottle::parse(&file).unwrap();
        prop_assert_eq!(Message::from_bottle(&bottle).unwrap(), m.clone());
        // And through the wire form too.
        let wire = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<Message>(&wire).unwrap(), m);
    }

    /// A recipient is either a valid agent name (or `all`) and the bottle lands in its
    /// inbox, or it is refused: never a path anywhere else.
    #[test]
    fn any_recipient_is_refused_or_kept_in_its_inbox(m in message(), to in any_recipient()) {
        let valid = to == "all" || datum_plugin_api::valid_name(&to);
        let m = Message { to: to.clone(), ..m };
        match m.to_bottle() {
            Ok(b) => {
                prop_assert!(valid, "{to:?} was accepted");
                let path = b.path();
                prop_assert!(path.starts_with(&format!("message-in-a-bottle/for-{to}/")), "{path}");
                prop_assert!(!path.contains("..") && path.matches('/').count() == 2, "{path}");
            }
            Err(e) => prop_assert!(!valid, "{to:?} was refused: {e}"),
        }
    }

    #[test]
    fn bottles_never_leave_their_inbox(m in message()) {
        let path = m.to_bottle().unwrap().path();
        let inbox = format!("message-in-a-bottle/for-{}/", m.to);
        prop_assert!(path.starts_with(&inbox));
        prop_assert!(!path.contains(".."));
        prop_assert_eq!(path.matches('/').count(), 2);
    }
}

#[test]
fn hostile_fields_are_refused_not_written() {
    let base: Message = serde_json::from_value(serde_json::json!({
        "type": "PING", "id": "x", "from": "alice", "to": "bob", "timestamp": 0
    }))
    .unwrap();
    for to in ["../x", "/etc/passwd", "bob/../../x", "\u{1b}[2J"] {
        let m = Message {
            to: to.into(),
            ..base.clone()
        };
        assert!(m.to_bottle().is_err(), "{to:?}");
    }
    let m = Message {
        subject: Some("\u{1b}]0;pwned\u{7}".into()),
        ..base.clone()
    };
    assert!(m.to_bottle().is_err());
}
