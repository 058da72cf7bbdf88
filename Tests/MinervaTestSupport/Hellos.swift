// The test hellos of PROTOCOL.md 9 ("Test hellos"): `HS`, `HH` and their `{...}` edits, written once.

/// `ID` of PROTOCOL.md 9: 26 times `x`.
package let testStreamID = String(repeating: "x", count: 26)

/// The keys and JSON values of `HS`, in order.
private let hsPairs: [(String, String)] = [
    ("tnum", "0"), ("new", "1"), ("ver", "2"), ("id", "\"\(testStreamID)\""), ("ming", "1"),
    ("maxb", "1073741824"), ("maxt", "1073741824"), ("maxia", "0"), ("seenack", "\"|-1\""),
]

/// The JSON text of `HS{edits}` without the final `H`: `k:v` sets key `k` to the JSON value `v` (replacing it, or
/// appending it when absent), `-k` removes key `k`; applied left to right.
package func helloJSON(_ edits: [String] = []) -> String {
    var pairs = hsPairs
    for edit in edits {
        if edit.hasPrefix("-") {
            pairs.removeAll { $0.0 == String(edit.dropFirst()) }
            continue
        }
        let colon = edit.firstIndex(of: ":")!
        let key = String(edit[..<colon])
        let value = String(edit[edit.index(after: colon)...])
        if let index = pairs.firstIndex(where: { $0.0 == key }) {
            pairs[index].1 = value
        } else {
            pairs.append((key, value))
        }
    }
    return "{" + pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}

/// `HS{edits}`, the socket flavour, as a HelloFrame (with its final `H`).
package func hs(_ edits: String...) -> String { hsList(edits) }

/// `HS{edits}` from a list.
package func hsList(_ edits: [String]) -> String { helloJSON(edits) + "H" }

/// `HH{edits}` = `HS{format:2,ming:0,edits}`, the HTTP long-poll flavour.
package func hh(_ edits: String...) -> String { hsList(["format:2", "ming:0"] + edits) }
