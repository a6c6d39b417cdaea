/// Fuzz body (in progress).
pub fn address(_data: &[u8]) {}
