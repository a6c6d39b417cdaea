//! Fuzz body `config`: the bootstrap reader ([`crate::config::parse`]) on arbitrary text never panics;
//! what it refuses comes with at least one error, each naming a field path and saying something; what it
//! accepts is a plan whose machine configurations pass their own validation.

/// One input: the bytes as UTF-8 text (other inputs are skipped, a config file is text).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::config::parse(text) {
        Ok(plan) => {
            for listener in plan.initiator.iter().flat_map(|i| &i.listeners) {
                assert!(
                    listener.config.validate().is_ok(),
                    "accepted an invalid initiator config: {:?}",
                    listener.config
                );
                assert!(
                    !listener.addresses.is_empty(),
                    "an rc:// listener without addresses"
                );
            }
            if let Some(responder) = &plan.responder {
                assert!(
                    responder.config.validate().is_ok(),
                    "accepted an invalid responder config: {:?}",
                    responder.config
                );
            }
            for door in &plan.front_doors {
                assert!(
                    plan.clusters.contains_key(&door.cluster),
                    "front door names a missing cluster"
                );
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for error in errors.iter() {
                assert!(!error.path.is_empty(), "an error without a path: {error:?}");
                assert!(
                    !error.message.is_empty(),
                    "an error without a message: {error:?}"
                );
            }
        }
    }
}
