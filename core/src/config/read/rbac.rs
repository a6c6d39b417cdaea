//! `envoy.filters.network.rbac` in its source-address form (front doors): `rules.action: ALLOW`,
//! `policies.<name>.permissions: [{any: true}]`, `policies.<name>.principals: [{direct_remote_ip |
//! remote_ip | source_ip: {address_prefix, prefix_len}} | {any: true}]`. Every other shape is an error
//! naming its field.

use crate::policy::{CidrRange, SourceAllowList};

use super::super::plan::RbacPlan;
use super::super::yaml::{Cx, Map, Node};
use super::required_string;

/// The principals that name the peer's address. revtun reads no PROXY protocol, so all three are the
/// address the connection came from.
const SOURCE_PRINCIPALS: [&str; 3] = ["direct_remote_ip", "remote_ip", "source_ip"];

/// Reads the filter's `typed_config` (its `@type` taken).
pub(super) fn read_rbac(map: &mut Map<'_>, cx: &mut Cx) -> Option<RbacPlan> {
    let stat_prefix = required_string(map, cx, "stat_prefix");
    let rules = map.require(cx, "rules");
    for unsupported in ["matcher", "shadow_rules", "shadow_matcher"] {
        if let Some(n) = map.take(unsupported) {
            cx.error(
                &n.path,
                "not supported: revtun runs the RBAC filter only as a source-address allow-list (rules with action ALLOW)",
            );
        }
    }
    // Accepted without effect: revtun's front doors close a refused client at once.
    if let Some(n) = map.take("enforcement_type") {
        n.choice(cx, &[("ONE_TIME_ON_FIRST_BYTE", ()), ("CONTINUOUS", ())]);
    }
    let ok = map.finish(cx);
    let ranges = rules.and_then(|r| read_rules(&r, cx));
    let plan = RbacPlan {
        stat_prefix: stat_prefix?,
        sources: SourceAllowList::new(ranges?),
    };
    ok.then_some(plan)
}

/// `rules`: `action: ALLOW` and `policies`.
fn read_rules(node: &Node<'_>, cx: &mut Cx) -> Option<Vec<CidrRange>> {
    let mut map = node.map(cx)?;
    let action = map.take("action");
    let policies = map.require(cx, "policies");
    map.finish(cx);
    let mut ok = true;
    // Envoy's default action is ALLOW.
    if let Some(a) = action {
        match a.str(cx) {
            Some("ALLOW") => {}
            Some(_) => {
                cx.error(
                    &a.path,
                    "only ALLOW is supported (a source-address allow-list)",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut policies = policies?.map(cx)?;
    let mut ranges = Vec::new();
    let entries = policies.take_all();
    if entries.is_empty() {
        cx.error(
            policies.path(),
            "at least one policy is needed (no policy would refuse every client)",
        );
        return None;
    }
    for (_, policy) in entries {
        match read_policy(&policy, cx) {
            Some(mut r) => ranges.append(&mut r),
            None => ok = false,
        }
    }
    ok.then_some(ranges)
}

/// One policy: `permissions: [{any: true}]` and `principals`.
fn read_policy(node: &Node<'_>, cx: &mut Cx) -> Option<Vec<CidrRange>> {
    let mut map = node.map(cx)?;
    let permissions = map.require(cx, "permissions");
    let principals = map.require(cx, "principals");
    map.finish(cx);
    let mut ok = true;
    for p in permissions?.seq(cx)? {
        ok &= read_any(
            &p,
            cx,
            "permissions other than {any: true} are not supported (revtun's front doors see no request)",
        );
    }
    let principals = principals?.seq(cx)?;
    if principals.is_empty() {
        cx.error(&node.path.key("principals"), "must not be empty");
        return None;
    }
    let mut ranges = Vec::new();
    for principal in principals {
        match read_principal(&principal, cx) {
            Some(mut r) => ranges.append(&mut r),
            None => ok = false,
        }
    }
    ok.then_some(ranges)
}

/// `{any: true}`; anything else is reported with `message`.
fn read_any(node: &Node<'_>, cx: &mut Cx, message: &str) -> bool {
    let Some(mut map) = node.map(cx) else {
        return false;
    };
    let any = map.take("any");
    let rest_ok = map.finish_with(cx, message);
    match any.map(|a| a.bool(cx)) {
        Some(Some(true)) => rest_ok,
        Some(Some(false)) | None => {
            if rest_ok {
                cx.error(&node.path, message);
            }
            false
        }
        Some(None) => false,
    }
}

/// A principal: one of [`SOURCE_PRINCIPALS`] with a `CidrRange`, or `{any: true}` (every address).
fn read_principal(node: &Node<'_>, cx: &mut Cx) -> Option<Vec<CidrRange>> {
    let mut map = node.map(cx)?;
    if let Some(any) = map.take("any") {
        map.finish(cx);
        if any.bool(cx)? {
            return Some(vec![
                CidrRange::new("0.0.0.0", 0).ok()?,
                CidrRange::new("::", 0).ok()?,
            ]);
        }
        cx.error(&any.path, "only any: true is supported");
        return None;
    }
    let mut found = None;
    for key in SOURCE_PRINCIPALS {
        if let Some(n) = map.take(key) {
            if found.is_some() {
                cx.error(&n.path, "a principal has exactly one rule");
                return None;
            }
            found = Some(n);
        }
    }
    let rest_ok = map.finish_with(
        cx,
        "unsupported principal: revtun's front doors support direct_remote_ip, remote_ip, source_ip (address ranges) and any",
    );
    let Some(range) = found else {
        if rest_ok {
            cx.error(
                &node.path,
                "a principal needs direct_remote_ip, remote_ip, source_ip or any",
            );
        }
        return None;
    };
    let range = read_cidr(&range, cx)?;
    rest_ok.then(|| vec![range])
}

/// `CidrRange`: `address_prefix` (an IP literal) and `prefix_len` (default 0, as in proto3).
fn read_cidr(node: &Node<'_>, cx: &mut Cx) -> Option<CidrRange> {
    let mut map = node.map(cx)?;
    let prefix = map.require(cx, "address_prefix").and_then(|n| {
        let s = n.string(cx)?;
        Some((n, s))
    });
    let len = match map.take("prefix_len") {
        Some(n) => Some((n.u32(cx)?, Some(n))),
        None => Some((0, None)),
    };
    map.finish(cx);
    let (prefix_node, prefix) = prefix?;
    let (len, len_node) = len?;
    match CidrRange::new(&prefix, len) {
        Ok(range) => Some(range),
        Err(e @ crate::policy::CidrError::PrefixLen { .. }) => {
            let path = len_node.map_or_else(|| node.path.key("prefix_len"), |n| n.path);
            cx.error(&path, e);
            None
        }
        Err(e) => {
            cx.error(&prefix_node.path, e);
            None
        }
    }
}
