//! Native protocol frames from arbitrary bytes: never a panic, a decoded
//! frame never claims more bytes than it was given, and whatever decodes
//! re-encodes to the same bytes (the encoder may refuse a key the decoder
//! passed on for the engine to refuse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use veltrix_client::protocol::{
    decode_hello, decode_request, decode_response, encode_request, encode_response, Limits,
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = decode_hello(data);
    if let Ok(Some((decoded, used))) = decode_request(data, &limits) {
        assert!(used <= data.len());
        if let Ok(request) = decoded.request {
            let mut again = Vec::new();
            if encode_request(&mut again, decoded.id, &request).is_ok() {
                assert_eq!(again, data[..used]);
            }
        }
    }
    if let Ok(Some((response, used))) = decode_response(data, &limits) {
        assert!(used <= data.len());
        let mut again = Vec::new();
        encode_response(&mut again, response.id, response.opcode, response.status, &response.body);
        assert_eq!(again, data[..used]);
    }
});
