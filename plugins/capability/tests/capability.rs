//! CAPABILITY.toml as other agents write it: short and full forms, hostile content,
//! lossless edits, and the published schema.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use capability::{Agent, Capability, CapabilityError, CapabilityFile, Source, Status};
use proptest::prelude::*;

const ORIGINAL_PLAN: &str = r#"# oracle1's profile
[agent]
name = "oracle1"
emoji = "🔮"
role = "architect"
mood = "curious"          # not a key datum knows: kept

[capabilities]
architecture = { confidence = 0.95 }
testing = { confidence = 0.90 }

[capabilities.flux-execution]
confidence = 0.8
stars = 4
learned = "2026-04-14"
source = "plugin:flux-vm@0.1.0"
verified-by = "conformance"   # unknown: kept

[[links]]
to = "ada"
kind = "mentor"

[endpoints]
bottles = "../bottles.git"
bus = "nats://127.0.0.1:4222"
"#;

#[test]
fn the_original_plans_short_form_reads_with_defaults() {
    let file = CapabilityFile::parse(ORIGINAL_PLAN).unwrap();
    let (p, warnings) = file.profile();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.agent.name, "oracle1");
    assert_eq!(p.agent.status, Status::Active);
    assert_eq!(p.capabilities["architecture"].stars, 5);
    assert_eq!(p.capabilities["testing"].stars, 5);
    assert_eq!(p.capabilities["architecture"].source, Source::Intrinsic);
    let flux = &p.capabilities["flux-execution"];
    assert_eq!((flux.confidence, flux.stars), (0.8, 4));
    assert_eq!(flux.learned.as_deref(), Some("2026-04-14"));
    assert_eq!(
        flux.source,
        Source::Plugin {
            name: "flux-vm".into(),
            version: "0.1.0".into()
        }
    );
    assert_eq!(p.links[0].to, "ada");
    assert_eq!(p.endpoints.bus.as_deref(), Some("nats://127.0.0.1:4222"));
}

#[test]
fn edits_keep_comments_order_forms_and_unknown_keys() {
    let mut file = CapabilityFile::parse(ORIGINAL_PLAN).unwrap();
    // Untouched, the text is byte for byte what was read.
    assert_eq!(file.to_string(), ORIGINAL_PLAN);
    let mut cap = Capability::new(
        0.99,
        Source::Transfer {
            agent: "ada".into(),
        },
    );
    cap.learned = Some("2026-11-27".into());
    file.set_capability("flux-execution", &cap);
    file.set_capability("conformance", &Capability::new(0.5, Source::Intrinsic));
    assert!(file.remove_capability("testing"));
    assert!(!file.remove_capability("testing"));
    let text = file.to_string();
    for kept in [
        "# oracle1's profile",
        "mood = \"curious\"          # not a key datum knows: kept",
        "verified-by = \"conformance\"   # unknown: kept",
        "[capabilities.flux-execution]",
        "architecture = { confidence = 0.95 }",
    ] {
        assert!(text.contains(kept), "lost `{kept}`:\n{text}");
    }
    let (p, warnings) = CapabilityFile::parse(&text).unwrap().profile();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.capabilities["flux-execution"], cap);
    assert_eq!(p.capabilities["conformance"].stars, 3);
    assert!(!p.capabilities.contains_key("testing"));
    // Order of the remaining entries is the file's: architecture stays first.
    assert!(text.find("architecture").unwrap() < text.find("conformance").unwrap());
}

#[test]
fn wrong_entries_are_warnings_with_positions_and_the_rest_still_reads() {
    let text = "[agent]\nname = \"ada\"\nstatus = \"sleeping\"\nrole = \"a\\u001b[2Jb\"\n\n[capabilities]\ngood = { confidence = 0.5 }\nloud = { confidence = 7 }\nshape = \"high\"\nstars = { confidence = 0.5, stars = 9 }\nwhen = { confidence = 0.5, learned = \"yesterday\" }\nfrom = { confidence = 0.5, source = \"plugin:../x@1\" }\n\"a\\u001b]0;pwned\\u0007\" = { confidence = 0.5 }\n";
    let (p, warnings) = CapabilityFile::parse(text).unwrap().profile();
    let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![3, 4, 8, 9, 10, 11, 12, 13], "{warnings:#?}");
    assert_eq!(p.agent.status, Status::Active);
    assert_eq!(p.agent.role, None, "a role with escapes is not taken");
    let names: Vec<&str> = p.capabilities.keys().map(String::as_str).collect();
    assert_eq!(names, ["from", "good", "stars", "when"]);
    assert_eq!(
        p.capabilities["stars"].stars, 3,
        "derived from the confidence"
    );
    assert_eq!(p.capabilities["when"].learned, None);
    assert_eq!(p.capabilities["from"].source, Source::Intrinsic);
    // Nothing a warning says would reach a terminal raw.
    for w in &warnings {
        let shown = w.to_string();
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(w.column >= 1);
    }
}

#[test]
fn syntax_errors_name_line_and_column_and_hostile_sizes_are_refused() {
    let err = CapabilityFile::parse("[agent]\nname = \"ada\"\nrole = \n").unwrap_err();
    assert!(
        matches!(err, CapabilityError::Syntax { line: 3, .. }),
        "{err}"
    );
    let huge = format!(
        "[agent]\nname = \"{}\"\n",
        "a".repeat(capability::MAX_BYTES)
    );
    assert!(matches!(
        CapabilityFile::parse(&huge),
        Err(CapabilityError::TooLarge(_))
    ));
    // Deep nesting is an error, not a stack overflow.
    for deep in [
        format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("x = {}", "{ a = ".repeat(50_000)),
    ] {
        assert!(CapabilityFile::parse(&deep).is_err());
    }
    // Wrong types everywhere: warnings, never a panic.
    let odd = "agent = 3\ncapabilities = [1, 2]\nlinks = \"none\"\nendpoints = 4\n";
    let (p, warnings) = CapabilityFile::parse(odd).unwrap().profile();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert!(p.capabilities.is_empty());
}

#[test]
fn a_new_file_reads_back_as_written() {
    let agent = Agent {
        name: "ada".into(),
        role: Some("the \"best\" one\n[plugins]".into()),
        ..Agent::default()
    };
    let abilities = vec![(
        "flux-execution".to_owned(),
        Capability::new(
            1.0,
            Source::Plugin {
                name: "flux-vm".into(),
                version: "0.1.0".into(),
            },
        ),
    )];
    let file = CapabilityFile::new(&agent, &abilities);
    let text = file.to_string();
    let (p, warnings) = CapabilityFile::parse(&text).unwrap().profile();
    // The role holds a newline (a control character): written safely, read back as a
    // warning rather than as two lines of TOML.
    assert_eq!(warnings.len(), 1, "{warnings:?}\n{text}");
    assert_eq!(p.agent.name, "ada");
    assert_eq!(p.capabilities["flux-execution"].stars, 5);
    let raw: toml::Table = toml::from_str(&text).unwrap();
    assert!(
        !raw.contains_key("plugins"),
        "a role added a table:\n{text}"
    );
    assert_eq!(raw["agent"]["role"].as_str(), agent.role.as_deref());
}

#[test]
fn the_published_schema_is_the_one_the_types_generate() {
    let generated = serde_json::to_string_pretty(&capability::json_schema()).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.json");
    if std::env::var_os("DATUM_WRITE_SCHEMA").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        published, generated,
        "schema.json is stale: regenerate it with DATUM_WRITE_SCHEMA=1 cargo test -p capability"
    );
    let schema: serde_json::Value = serde_json::from_str(&published).unwrap();
    assert!(schema["properties"]["capabilities"].is_object());
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,15}"
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Intrinsic),
        (name(), "[0-9]\\.[0-9]\\.[0-9]")
            .prop_map(|(name, version)| Source::Plugin { name, version }),
        name().prop_map(|agent| Source::Transfer { agent }),
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    (
        0u32..=1000,
        1u8..=5,
        prop::option::of("20[0-9]{2}-[01][0-9]-[0-3][0-9]"),
        source(),
    )
        .prop_map(|(c, stars, learned, source)| Capability {
            confidence: f64::from(c) / 1000.0,
            stars,
            learned,
            source,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever datum writes, it reads back exactly, and nothing warns.
    #[test]
    fn written_profiles_read_back_exactly(
        agent in name(),
        role in prop::option::of("[ -~]{0,30}"),
        caps in prop::collection::btree_map(name(), capability(), 0..8),
    ) {
        let a = Agent { name: agent, role, ..Agent::default() };
        let list: Vec<(String, Capability)> = caps.clone().into_iter().collect();
        let text = CapabilityFile::new(&a, &list).to_string();
        let (p, warnings) = CapabilityFile::parse(&text).unwrap().profile();
        prop_assert!(warnings.is_empty(), "{:?}\n{}", warnings, text);
        prop_assert_eq!(p.agent, a);
        prop_assert_eq!(p.capabilities, caps);
    }

    /// Any text: parsed or refused, never a panic; warnings always printable.
    #[test]
    fn any_text_is_read_or_refused(text in "(\\[agent\\]|\\[capabilities\\]|[a-z\"=.{}\\[\\] \n0-9\u{1b}-]){0,200}") {
        if let Ok(file) = CapabilityFile::parse(&text) {
            let (_, warnings) = file.profile();
            for w in warnings {
                prop_assert!(!w.to_string().chars().any(|c| c.is_control()));
            }
        }
    }
}
