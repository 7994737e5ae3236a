//! The offline model's own parts against their specifications: Lambda's log-level filter, the
//! metric filter patterns and the metric math the template uses.

mod lambda_logs {
    use users_tests::model::lambda_logs::*;

    const AT: &str = "2026-11-23T10:15:30.123Z";

    #[test]
    fn a_line_has_its_own_level_only_with_a_valid_level_and_timestamp() {
        assert_eq!(
            level_of(&format!(r#"{{"level":"ERROR","timestamp":"{AT}"}}"#)),
            "ERROR"
        );
        assert_eq!(
            level_of(&format!(r#"{{"level":"debug","timestamp":"{AT}"}}"#)),
            "DEBUG"
        );
        assert_eq!(
            level_of(&format!(r#"{{"level":"FATAL","timestamp":"{AT}"}}"#)),
            "FATAL"
        );
        assert_eq!(level_of(r#"{"level":"ERROR"}"#), "INFO", "no timestamp");
        assert_eq!(
            level_of(r#"{"level":"ERROR","timestamp":"yesterday"}"#),
            "INFO"
        );
        assert_eq!(
            level_of(&format!(r#"{{"timestamp":"{AT}"}}"#)),
            "INFO",
            "no level"
        );
        assert_eq!(
            level_of(&format!(r#"{{"level":"LOUD","timestamp":"{AT}"}}"#)),
            "INFO"
        );
        assert_eq!(level_of("[runtime] received SIGTERM"), "INFO", "not JSON");
        assert_eq!(level_of(r#"["level","ERROR"]"#), "INFO", "not an object");
    }

    #[test]
    fn json_lines_are_kept_at_their_level_or_a_more_detailed_setting() {
        let error = format!(r#"{{"level":"ERROR","timestamp":"{AT}"}}"#);
        let info = format!(r#"{{"level":"INFO","timestamp":"{AT}"}}"#);
        let untagged = r#"{"_aws":{"Timestamp":1}}"#;
        assert!(kept(&error, "JSON", "WARN"));
        assert!(kept(&error, "JSON", "ERROR"));
        assert!(!kept(&error, "JSON", "FATAL"));
        assert!(kept(&info, "JSON", "INFO"));
        assert!(!kept(&info, "JSON", "WARN"));
        assert!(kept(untagged, "JSON", "DEBUG"));
        assert!(
            !kept(untagged, "JSON", "WARN"),
            "a line without a level is INFO"
        );
        assert!(
            kept(untagged, "Text", "ERROR"),
            "text logs are never filtered"
        );
    }

    #[test]
    fn report_lines_need_an_info_system_level() {
        assert!(system_kept("INFO", "INFO"));
        assert!(system_kept("INFO", "DEBUG"));
        assert!(!system_kept("INFO", "WARN"));
    }

    #[test]
    fn reads_rfc3339_as_lambda_wants_it() {
        let at = |timestamp: &str| format!(r#"{{"level":"ERROR","timestamp":"{timestamp}"}}"#);
        for good in [
            AT,
            "2026-11-23T10:15:30Z",
            "2026-11-23T10:15:30.620167Z",
            "2026-11-23T10:15:30+01:00",
        ] {
            assert_eq!(level_of(&at(good)), "ERROR", "{good}");
        }
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23 10:15:30Z",
            "2026-11-23T10:15:30",
            "2026-11-23T10:15:30.Z",
            "1795471260573",
        ] {
            assert_eq!(level_of(&at(bad)), "INFO", "{bad}");
        }
    }
}

mod filter_pattern {
    use users_tests::model::filter_pattern::*;

    fn matches(pattern: &str, event: &str) -> bool {
        Pattern::parse(pattern)
            .expect("a valid pattern")
            .matches(event)
    }

    #[test]
    fn compares_numbers() {
        let pattern = "{ $.status >= 500 }";
        assert!(matches(pattern, r#"{"status":500}"#));
        assert!(matches(pattern, r#"{"status":503,"level":"ERROR"}"#));
        assert!(!matches(pattern, r#"{"status":499}"#));
        assert!(
            !matches(pattern, r#"{"status":"503"}"#),
            "a string is not a number"
        );
        assert!(!matches(pattern, r#"{"code":"internal"}"#), "no field");
        assert!(!matches(pattern, "status 503"), "not JSON");
        assert!(matches("{$.status<400}", r#"{"status":201}"#));
        assert!(matches("{ $.a.b = 2 }", r#"{"a":{"b":2}}"#));
        assert!(matches("{ $.status != 500 }", r#"{"status":503}"#));
    }

    #[test]
    fn compares_strings_and_prefixes() {
        assert!(matches(
            r#"{ $.code = "internal" }"#,
            r#"{"code":"internal"}"#
        ));
        assert!(matches("{ $.code = internal }", r#"{"code":"internal"}"#));
        assert!(!matches(
            "{ $.code = internal }",
            r#"{"code":"unavailable"}"#
        ));
        assert!(matches("{ $.route = GET* }", r#"{"route":"GET /users"}"#));
        assert!(matches("{ $.version = * }", r#"{"version":"2"}"#));
        assert!(!matches("{ $.version = * }", r#"{"status":500}"#));
        assert!(matches(
            "{ $.code != internal }",
            r#"{"code":"unavailable"}"#
        ));
    }

    #[test]
    fn joins_and_groups() {
        let pattern = r#"{ ($.status >= 500 && $.version = "2") || $.code = "internal" }"#;
        assert!(matches(pattern, r#"{"status":503,"version":"2"}"#));
        assert!(!matches(pattern, r#"{"status":503,"version":"1"}"#));
        assert!(matches(pattern, r#"{"status":500,"code":"internal"}"#));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "$.status >= 500",
            "{ $.status >= }",
            "{ $.status 500 }",
            "{ 500 }",
            "{ ($.a = 1 }",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selects_dimension_values() {
        let event = r#"{"function":"f","version":"2","status":503}"#;
        assert_eq!(select_text(event, "$.version").as_deref(), Some("2"));
        assert_eq!(select_text(event, "$.status").as_deref(), Some("503"));
        assert_eq!(select_text(event, "$.missing"), None);
    }
}

mod metric_math {
    use std::collections::BTreeMap;
    use users_tests::model::metric_math::*;

    fn eval(expression: &str, metrics: &[(&str, Option<f64>)]) -> Option<f64> {
        let metrics = metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        evaluate(expression, &metrics).expect("a valid expression")
    }

    #[test]
    fn fills_and_sums() {
        let expression = "FILL(reads, 0) + FILL(writes, 0) + FILL(index_writes, 0)";
        assert_eq!(
            eval(
                expression,
                &[
                    ("reads", None),
                    ("writes", None),
                    ("index_writes", Some(2.0))
                ]
            ),
            Some(2.0)
        );
        assert_eq!(
            eval("reads + writes", &[("reads", None), ("writes", Some(1.0))]),
            None
        );
    }

    #[test]
    fn rates_with_a_floor() {
        let rate = "IF(FILL(errors, 0) >= 3, 100 * FILL(errors, 0) / invocations, 0)";
        assert_eq!(
            eval(rate, &[("errors", Some(1.0)), ("invocations", Some(2.0))]),
            Some(0.0)
        );
        assert_eq!(
            eval(rate, &[("errors", None), ("invocations", Some(20.0))]),
            Some(0.0)
        );
        assert_eq!(
            eval(rate, &[("errors", Some(4.0)), ("invocations", Some(20.0))]),
            Some(20.0)
        );
        let api = "IF(requests >= 10, 100 * FILL(errors, 0) / requests, 0)";
        assert_eq!(
            eval(api, &[("errors", Some(1.0)), ("requests", Some(5.0))]),
            Some(0.0)
        );
        assert_eq!(
            eval(api, &[("errors", None), ("requests", Some(10.0))]),
            Some(0.0)
        );
        assert_eq!(
            eval(api, &[("errors", Some(5.0)), ("requests", Some(50.0))]),
            Some(10.0)
        );
        assert_eq!(
            eval(api, &[("errors", None), ("requests", None)]),
            Some(0.0)
        );
    }

    #[test]
    fn logic_and_precedence() {
        assert_eq!(eval("1 + 2 * 3", &[]), Some(7.0));
        assert_eq!(eval("(1 + 2) * 3", &[]), Some(9.0));
        assert_eq!(eval("2 > 1 AND 1 > 2", &[]), Some(0.0));
        assert_eq!(eval("2 > 1 OR 1 > 2", &[]), Some(1.0));
        assert_eq!(eval("-2 + 3", &[]), Some(1.0));
        assert_eq!(eval("1 / 0", &[]), None);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let none = BTreeMap::new();
        for bad in ["FILL(a", "1 +", "unknown", "1 $ 2", "IF(1, 2"] {
            assert!(evaluate(bad, &none).is_err(), "{bad}");
        }
    }
}
