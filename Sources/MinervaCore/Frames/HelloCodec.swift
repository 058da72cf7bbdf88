// HelloFrame decoding (strict JSON, PROTOCOL.md 2.5) and encoding (the original client's byte layout, 7.3).

extension HelloFrame {
    /// Decodes and validates the JSON payload of a HelloFrame (the bytes before the final `H`).
    /// - Parameter json: the JSON text.
    /// - Returns: the hello, or why it is invalid.
    public static func decode(json: ArraySlice<UInt8>) -> Result<HelloFrame, HelloDecodingError> {
        .failure(HelloDecodingError(.syntax))
    }

    /// Appends the hello as compact JSON (no `H`).
    /// - Parameter buffer: the output.
    public func encode(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: "{}".utf8)
    }
}
