//! Loopback scenarios written once against the driver's `Arc<dyn Runtime>`, run on every runtime and
//! across runtimes.
//!
//! Each scenario is an `async fn(Sides)`: [`Sides::initiator`] runs the initiator (and the services
//! behind it), [`Sides::responder`] the responder (and the clients in front of it). A test file picks
//! the runtimes and a `block_on`, and instantiates every scenario with [`all_scenarios!`]
//! (`tests/tests/scenarios_{tokio,smol,async_std,cross}.rs`). Helpers here use only the driver, the
//! futures-io traits and the [`Runtime`] given, so nothing in a scenario names a runtime.

pub mod admission;
pub mod claim_marker;
pub mod claim_timeout;
pub mod envoy_mode;
pub mod flood;
pub mod host_resolution;
pub mod hostile;
pub mod keepalive_wire;
pub mod listener_drop;
pub mod raw_peers;
pub mod registration;
pub mod relay;
pub mod responder_restart;
pub mod tls;
pub mod tls_data_leg;
pub mod tls_identity;
pub mod tls_reload;

mod raw;
mod support;

pub use raw::*;
pub use revtun_driver::{BoxStream, HostSource, ResponderHandle, ReverseListener, Runtime};
pub use support::*;

/// Instantiates one `#[test]` per named scenario: `$run(|sides| scenario(sides))`, where `$run` is the
/// test file's function that builds the runtimes, blocks on the body, and stops every task.
#[macro_export]
macro_rules! scenarios {
    ($run:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $run(|sides| $crate::scenarios::$module::$name(sides));
            }
        )*
    };
}

/// Instantiates every scenario of this module with `$run` (see [`scenarios!`]).
#[macro_export]
macro_rules! all_scenarios {
    ($run:path) => {
        $crate::scenarios!($run;
            registration::count_tunnels_register_and_both_sides_count_them,
            claim_marker::data_beginning_with_rping_passes_intact_both_ways,
            claim_marker::server_speaks_first_through_the_tunnel,
            claim_marker::claimed_tunnels_are_replaced_and_released,
            claim_marker::client_writes_right_behind_rdata_while_the_server_speaks_first,
            claim_timeout::unknown_node_times_out_within_claim_timeout,
            claim_timeout::a_dropped_claim_is_withdrawn,
            claim_timeout::claims_fail_with_shutdown_once_the_responder_stops,
            envoy_mode::http_request_goes_through_without_the_claim_marker,
            host_resolution::strict_and_logical_dns_resolve_localhost,
            host_resolution::re_resolution_follows_changes_and_counts_failures,
            keepalive_wire::responder_pings_on_the_wire_and_evicts_a_silent_peer,
            keepalive_wire::initiator_redials_when_the_responder_goes_silent,
            listener_drop::dropping_the_listener_closes_idle_tunnels_only,
            raw_peers::initiator_hands_over_bytes_that_came_with_rdata,
            raw_peers::responder_hands_over_bytes_that_came_with_the_rdata_answer,
            raw_peers::responder_in_envoy_mode_starts_writing_data_on_the_tunnel,
            raw_peers::initiator_delivers_a_large_claim_sent_with_the_200,
            raw_peers::responder_accepts_a_head_larger_than_one_read,
            raw_peers::claimed_tunnel_that_dies_before_its_answer_fails_the_stream,
            raw_peers::claimed_tunnel_with_no_answer_times_out,
            relay::half_close_travels_each_way_independently,
            relay::large_transfer_both_ways_at_once,
            relay::idle_relay_times_out_and_closes_both_sides,
            responder_restart::initiator_reconnects_after_responder_restart,
            tls::tunnel_mtls_carries_keepalive_claims_and_data,
            tls::client_without_certificate_is_refused,
            tls::untrusted_server_certificate_is_refused,
            tls::stalled_tls_handshakes_close_at_the_handshake_timeout,
            tls_reload::rewritten_certificates_apply_to_new_tunnels_only,
            tls_data_leg::data_leg_tls_inside_tunnel_tls,
            tls_identity::identity_binding_admits_only_the_certified_node,
            hostile::slowloris_is_closed_at_the_handshake_timeout,
            hostile::head_over_the_limit_is_closed,
            hostile::per_ip_cap_keeps_a_flooding_address_from_locking_out_initiators,
            hostile::total_cap_evicts_the_oldest_pending_handshake,
            admission::bearer_token_mismatch_is_401,
            admission::allow_list_patterns_answer_403,
            admission::per_node_cap_answers_429_with_retry_after,
            admission::tenant_isolation_keeps_tenants_apart,
            admission::token_file_rotation_takes_effect_and_keeps_tunnels,
            admission::set_extra_headers_gives_the_initiator_a_new_token,
            admission::bearer_token_file_rotation_needs_no_initiator_restart,
        );
    };
}
