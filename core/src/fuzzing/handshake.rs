/// Fuzz body (in progress).
pub fn handshake_request(_data: &[u8]) {}
/// Fuzz body (in progress).
pub fn handshake_response(_data: &[u8]) {}
