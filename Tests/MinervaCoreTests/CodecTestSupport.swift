import MinervaCore
import MinervaTestSupport

/// The bytes of an ASCII string literal.
func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

/// Decodes `string` (given as UTF-8) in `direction`.
func decode(_ string: String, _ direction: FrameDirection = .serverToClient) -> Result<Frame, FrameDecodingError> {
    Frame.decode(ArraySlice(bytes(string)), direction: direction)
}

/// Decodes raw bytes in `direction`.
func decode(bytes input: [UInt8], _ direction: FrameDirection = .serverToClient) -> Result<Frame, FrameDecodingError> {
    Frame.decode(ArraySlice(input), direction: direction)
}

/// The decoded frame, or nil if decoding failed.
func frame(_ string: String, _ direction: FrameDirection = .serverToClient) -> Frame? {
    try? decode(string, direction).get()
}

/// The failure kind, or nil if decoding succeeded.
func failureKind(_ string: String, _ direction: FrameDirection = .serverToClient) -> FrameDecodingError.Kind? {
    if case .failure(let error) = decode(string, direction) { return error.kind }
    return nil
}

/// The frame encoded as a String (frames in tests are ASCII).
func encodedString(_ frame: Frame) -> String { String(decoding: frame.encoded, as: UTF8.self) }

/// An ArraySlice of the string's bytes.
func slice(_ string: String) -> ArraySlice<UInt8> { ArraySlice(string.utf8) }
