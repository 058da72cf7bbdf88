// JSON over Minerva strings, for applications: Codable values in and out as restricted strings (bytes 0x20...0x7E).
// It uses Foundation's JSONEncoder/JSONDecoder, which is why it is a target of its own, off the hot path: the other
// library targets stay free of Foundation.
import Foundation
import MinervaCore

/// Codable helpers that produce and read restricted strings, the Swift side of the JavaScript client's
/// `JSON.asciify` rule.
public enum MinervaJSON {
    /// Escapes every character of JSON text outside 0x20...0x7E as `\uXXXX` (UTF-16 code units, so characters above
    /// U+FFFF become surrogate pairs), making it a restricted string that any JSON parser reads back unchanged.
    /// Characters are only ever inside JSON strings there, so the escapes are valid JSON.
    /// - Parameter json: JSON text.
    /// - Returns: the same JSON value, in printable ASCII.
    public static func asciify(_ json: String) -> String {
        var out = ""
        out.reserveCapacity(json.utf8.count)
        for unit in json.utf16 {
            if unit >= 0x20 && unit <= 0x7E {
                out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            } else {
                out += "\\u"
                let hex = String(unit, radix: 16)
                out += String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return out
    }

    /// Encodes a value as JSON in a restricted string.
    /// - Parameters:
    ///   - value: the value.
    ///   - encoder: the encoder (its output formatting is kept; pretty printing would add newlines, which are escaped).
    /// - Returns: the JSON text, asciified.
    public static func encode(_ value: some Encodable, encoder: JSONEncoder = JSONEncoder()) throws -> String {
        let data = try encoder.encode(value)
        return asciify(String(decoding: data, as: UTF8.self))
    }

    /// Decodes a value from a received string (the bytes the application got from the stream).
    /// - Parameters:
    ///   - type: the type to decode.
    ///   - string: the string's bytes.
    ///   - decoder: the decoder.
    public static func decode<T: Decodable>(
        _ type: T.Type, from string: some Collection<UInt8>, decoder: JSONDecoder = JSONDecoder()
    ) throws -> T {
        try decoder.decode(type, from: Data(string))
    }
}

extension ServerStream {
    /// Sends a Codable value as one JSON string (asciified, see ``MinervaJSON/asciify(_:)``).
    /// - Parameters:
    ///   - value: the value.
    ///   - encoder: the encoder.
    /// - Throws: an encoding error, or what ``ServerStream/send(_:)-([UInt8])`` throws.
    public func sendJSON(_ value: some Encodable, encoder: JSONEncoder = JSONEncoder()) throws {
        try send(MinervaJSON.encode(value, encoder: encoder))
    }
}
