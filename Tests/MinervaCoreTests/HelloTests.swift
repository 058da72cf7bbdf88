import MinervaCore
import MinervaTestSupport
import Testing

// PROTOCOL.md 9, group B (hello validation), case 15, and the JSON reader's edge cases.

/// Edits of 9's `HS{...}` notation: `.set(k, v)` replaces or appends, `.remove(k)` drops.
enum HelloEdit {
    case set(String, String)
    case remove(String)

    /// The edit in PROTOCOL.md 9's notation (`k:v` or `-k`).
    var notation: String {
        switch self {
        case .set(let key, let value): "\(key):\(value)"
        case .remove(let key): "-\(key)"
        }
    }
}

/// The JSON text of HS with `edits` applied (without the final `H`).
func helloJSON(_ edits: [HelloEdit]) -> String { helloJSON(edits.map(\.notation)) }

/// Decodes a hello JSON text.
func decodeHello(_ json: String) -> Result<HelloFrame, HelloDecodingError> {
    HelloFrame.decode(json: ArraySlice(json.utf8))
}

/// Decodes raw hello bytes.
func decodeHello(bytes json: [UInt8]) -> Result<HelloFrame, HelloDecodingError> {
    HelloFrame.decode(json: ArraySlice(json))
}

/// Whether `json` is a valid hello.
func isValidHello(_ json: String) -> Bool {
    if case .success = decodeHello(json) { return true }
    return false
}

/// The hello decoded from `json`, or nil.
func hello(_ json: String) -> HelloFrame? { try? decodeHello(json).get() }

/// The generic invalid values G of case 17.
let genericInvalid = [
    "-36893488147419103232", "-1", "-0.5", "0.5", "9007199254740993", "\"\"", "[]", "[\"something\"]", "{}", "true",
    "false", "null",
]

@Test func case15_helloWithOnlyTransportNumberEncodes() throws {
    let hello = HelloFrame(
        transportNumber: 0, streamID: StreamID(testStreamID)!, streamingResponse: false, maxInactivity: 0)
    var out: [UInt8] = []
    hello.encode(into: &out, keys: HelloKeys(.tnum))
    #expect(String(decoding: out, as: UTF8.self) == "{\"tnum\":0}")
    var frameBytes: [UInt8] = []
    Frame.hello(hello).encode(into: &frameBytes)
    #expect(frameBytes.last == UInt8(ascii: "H"))
    #expect(try Frame.decode(ArraySlice(frameBytes), direction: .clientToServer).get() == .hello(hello))
}

@Test func case16_hsIsValid() throws {
    let decoded = try decodeHello(helloJSON()).get()
    #expect(decoded.transportNumber == 0)
    #expect(decoded.requestNewStream)
    #expect(decoded.protocolVersion == 2)
    #expect(decoded.streamID == StreamID(testStreamID))
    #expect(decoded.streamingResponse)
    #expect(decoded.maxReceiveBytes == 1 << 30)
    #expect(decoded.maxOpenTime == 1 << 30)
    #expect(decoded.maxInactivity == 0)
    #expect(decoded.needPaddingBytes == 0)
    #expect(decoded.httpFormat == nil)
    #expect(decoded.sack == nil)
    #expect(decoded.lastSackSeenByClient == .initial)
    #expect(decoded.succeedsTransport == .absent)
    #expect(!decoded.wantsStrings)
    #expect(hello(helloJSON([.set("eeds", "null")]))?.succeedsTransport == SucceedsTransport.none)
    #expect(hello(helloJSON([.set("eeds", "null")]))?.wantsStrings == true)
    #expect(hello(helloJSON([.set("eeds", "3")]))?.succeedsTransport == .transport(3))
    // Through Frame.decode, server direction.
    let frame = try Frame.decode(ArraySlice((helloJSON() + "H").utf8), direction: .clientToServer).get()
    #expect(frame == .hello(decoded))
    // Defaults when optional keys are absent.
    let minimal = try decodeHello(helloJSON([.remove("new"), .remove("maxb"), .remove("maxt")])).get()
    #expect(!minimal.requestNewStream && minimal.maxReceiveBytes == maxProtocolInteger && minimal.maxOpenTime == nil)
}

@Test func case17_invalidValues() {
    #expect(!isValidHello(helloJSON([.remove("tnum")])))
    #expect(!isValidHello(helloJSON([.remove("ming")])))
    #expect(isValidHello(helloJSON([.remove("maxb")])))
    #expect(isValidHello(helloJSON([.remove("maxt")])))
    for value in genericInvalid {
        for key in ["tnum", "id", "maxb", "maxt"] {
            #expect(!isValidHello(helloJSON([.set(key, value)])), "\(key): \(value)")
        }
        if value != "true" && value != "false" {
            #expect(!isValidHello(helloJSON([.set("ming", value)])), "ming: \(value)")
        }
    }
    #expect(!isValidHello(helloJSON([.set("ming", "2")])))
    #expect(!isValidHello(helloJSON([.set("ming", "3")])))
    for value in ["true", "false", "0", "1", "1.0", "0.0", "-0.0", "-0", "1e0"] {
        #expect(isValidHello(helloJSON([.set("ming", value)])), "ming: \(value)")
    }
    #expect(hello(helloJSON([.set("ming", "-0.0")]))?.streamingResponse == false)
    #expect(hello(helloJSON([.set("tnum", "9007199254740992")]))?.transportNumber == maxProtocolInteger)
    #expect(hello(helloJSON([.set("tnum", "3.0")]))?.transportNumber == 3)
    #expect(hello(helloJSON([.set("tnum", "3e0")]))?.transportNumber == 3)
    #expect(hello(helloJSON([.set("tnum", "-0")]))?.transportNumber == 0)
    #expect(hello(helloJSON([.set("tnum", "-0.0")]))?.transportNumber == 0)
    #expect(hello(helloJSON([.set("maxb", "0")]))?.maxReceiveBytes == 0)
    if case .failure(let error) = decodeHello(helloJSON([.remove("tnum")])) {
        #expect(error.key == .tnum && !error.isJSONError)
    } else {
        Issue.record("hello without tnum accepted")
    }
}

@Test func case18_version() {
    #expect(!isValidHello(helloJSON([.remove("ver")])))
    for value in ["0", "1", "\"1\"", "1.001", "\"2\"", "3", "2.0000001"] + genericInvalid {
        #expect(!isValidHello(helloJSON([.set("ver", value)])), "ver: \(value)")
    }
    #expect(isValidHello(helloJSON([.set("ver", "2.0")])))
    #expect(isValidHello(helloJSON([.set("ver", "2e0")])))
}

@Test func case19_streamIDs() {
    let invalid = [
        "\"\"", "\"\\u0000\"", "\"x\"", "\"" + String(repeating: "\u{CCCC}", count: 25) + "\"",
        "\"" + String(repeating: "\u{CCCC}", count: 8) + "\"", "\"" + String(repeating: "\u{80}", count: 25) + "\"",
        "\"" + String(repeating: "\\u0080", count: 25) + "\"", "\"" + String(repeating: "x", count: 19) + "\"",
        "\"" + String(repeating: "x", count: 31) + "\"", "\"" + String(repeating: "x", count: 3000) + "\"",
    ]
    #expect(!isValidHello(helloJSON([.remove("id")])))
    for value in invalid + genericInvalid {
        #expect(!isValidHello(helloJSON([.set("id", value)])), "id: \(value.prefix(40))")
    }
    for count in [20, 30] {
        let id = String(repeating: "y", count: count)
        #expect(hello(helloJSON([.set("id", "\"\(id)\"")]))?.streamID == StreamID(id))
    }
    let nulID = "\"" + String(repeating: "\\u0000", count: 26) + "\""
    #expect(hello(helloJSON([.set("id", nulID)]))?.streamID == StreamID(bytes: [UInt8](repeating: 0, count: 26)))
    let escaped = "\"\\u0041\\n\\t\\\"\\\\\\/" + String(repeating: "x", count: 20) + "\""
    #expect(
        hello(helloJSON([.set("id", escaped)]))?.streamID
            == StreamID(bytes: bytes("A\n\t\"\\/") + bytes(String(repeating: "x", count: 20))))
}

@Test func case20_formatMingMaxia() {
    for value in ["4", "1", "0", "null", "\"2\"", "2.5"] + genericInvalid {
        #expect(!isValidHello(helloJSON([.set("format", value)])), "format: \(value)")
    }
    #expect(hello(helloJSON([.set("format", "2")]))?.httpFormat == 2)
    #expect(hello(helloJSON([.set("format", "3")]))?.httpFormat == 3)
    #expect(hello(helloJSON([.set("format", "2.0")]))?.httpFormat == 2)
    #expect(hello(helloJSON())?.httpFormat == nil)
    #expect(!isValidHello(helloJSON([.set("ming", "2")])))
    #expect(!isValidHello(helloJSON([.set("ming", "3")])))
    #expect(!isValidHello(helloJSON([.remove("maxia")])))
    for value in ["null", "0.5", "1.5", "601", "-1", "\"1\""] {
        #expect(!isValidHello(helloJSON([.set("maxia", value)])), "maxia: \(value)")
    }
    #expect(hello(helloJSON([.set("maxia", "600")]))?.maxInactivity == 600)
    #expect(hello(helloJSON([.set("pad", "16384")]))?.needPaddingBytes == 16384)
    #expect(!isValidHello(helloJSON([.set("pad", "16385")])))
    #expect(!isValidHello(helloJSON([.set("pad", "null")])))
    #expect(!isValidHello(helloJSON([.set("new", "2")])))
    #expect(!isValidHello(helloJSON([.set("new", "null")])))
    #expect(hello(helloJSON([.set("new", "0.0")]))?.requestNewStream == false)
    // tcpack: anything (a string must still be ASCII).
    for value in ["false", "true", "null", "[1,{\"a\":\"\u{e9}\"}]", "\"yes\"", "1e400"] {
        #expect(isValidHello(helloJSON([.set("tcpack", value)])), "tcpack: \(value)")
    }
    #expect(!isValidHello(helloJSON([.set("tcpack", "\"\u{e9}\"")])))
    #expect(hello(helloJSON([.set("tcpack", "false")]))?.useMyTcpAcks == false)
}

@Test func case21_sackAndSeenack() {
    for value in ["\"\"", "\"|\"", "\"|-2\"", "\"-2|-1\"", "null", "3", "\"|-1\\n\"", "\"1\\n|-1\""] {
        #expect(!isValidHello(helloJSON([.set("sack", value)])), "sack: \(value)")
        #expect(!isValidHello(helloJSON([.set("seenack", value)])), "seenack: \(value)")
    }
    #expect(!isValidHello(helloJSON([.remove("seenack")])))
    #expect(hello(helloJSON([.set("sack", "\"1,4|2\"")]))?.sack == SACK(ackNumber: 2, sackList: [1, 4]))
    #expect(hello(helloJSON([.set("seenack", "\"|3\"")]))?.lastSackSeenByClient == SACK(ackNumber: 3))
    // Escapes that decode to a valid SACK string are fine.
    #expect(hello(helloJSON([.set("seenack", "\"\\u007c5\"")]))?.lastSackSeenByClient == SACK(ackNumber: 5))
}

@Test func case22_eeds() {
    for value in ["-1", "-4294967296", "-0.5", "9007199254740993", "\"4\"", "true", "false", "[]", "{}", "1e400"] {
        #expect(!isValidHello(helloJSON([.set("eeds", value)])), "eeds: \(value)")
    }
    #expect(hello(helloJSON([.set("eeds", "null")]))?.succeedsTransport == SucceedsTransport.none)
    #expect(hello(helloJSON([.set("eeds", "0")]))?.succeedsTransport == .transport(0))
    #expect(hello(helloJSON([.set("eeds", "3")]))?.succeedsTransport == .transport(3))
}

@Test func case23_deepNestingIsRejectedWithoutCrashing() {
    let objects = String(repeating: "{\"\":", count: 20000) + "1" + String(repeating: "}", count: 20000)
    let arrays = String(repeating: "[", count: 20000) + String(repeating: "]", count: 20000)
    for json in [objects, "{\"a\":" + arrays + "}", "{\"a\":" + objects + "}", arrays] {
        #expect(!isValidHello(json))
    }
    if case .failure(let error) = decodeHello("{\"a\":" + arrays + "}") {
        #expect(error.isJSONError)
        #expect(error.description.contains("deep"))
    } else {
        Issue.record("deep nesting accepted")
    }
    // Depth 32 (the hello object plus 31 levels) is accepted, 33 is not.
    let nested31 = String(repeating: "[", count: 31) + String(repeating: "]", count: 31)
    let nested32 = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
    #expect(isValidHello(helloJSON([.set("zz", nested31)])))
    #expect(!isValidHello(helloJSON([.set("zz", nested32)])))
}

@Test func case24_trailingGarbage() {
    #expect(!isValidHello(helloJSON() + "x"))
    #expect(!isValidHello(helloJSON() + " "))
    #expect(!isValidHello(helloJSON() + "\n"))
    #expect(!isValidHello(helloJSON() + "}"))
    #expect(!isValidHello(" " + helloJSON()))
    #expect(!isValidHello("\u{FEFF}" + helloJSON()))
    #expect(!isValidHello("\n" + helloJSON()))
    let frame = Array((helloJSON() + "xH").utf8)
    if case .failure(let error) = Frame.decode(ArraySlice(frame), direction: .clientToServer) {
        #expect(error.kind == .invalidHello)
    } else {
        Issue.record("trailing garbage accepted")
    }
}

@Test func case25_nanAndInfinities() {
    for value in ["NaN", "Infinity", "-Infinity", "nan", "inf", "1e400", "-1e400"] {
        #expect(!isValidHello(helloJSON([.set("tnum", value)])), "tnum: \(value)")
    }
    for key in ["tnum", "eeds", "pad", "maxb", "maxt", "maxia"] {
        #expect(!isValidHello(helloJSON([.set(key, "1e400")])), "\(key)")
    }
}

@Test func jsonStructureAndWhitespace() {
    #expect(
        isValidHello(
            "{ \"tnum\" : 0 ,\n\"ver\":2,\t\"id\":\"\(testStreamID)\",\r\"ming\":true,\"maxia\":0,\"seenack\":\"|-1\" }"
        ))
    for json in [
        "[]", "\"x\"", "1", "", "null", "{", "{}", "{\"tnum\":0,}", "{,}", "{\"tnum\" 0}", "{'tnum':0}",
        "{\"tnum\":0 \"ver\":2}", "{tnum:0}",
    ] {
        #expect(!isValidHello(json), "\(json)")
    }
    #expect(!isValidHello(helloJSON([.set("zz", "[1,]")])))
    #expect(!isValidHello(helloJSON([.set("zz", "[,1]")])))
    #expect(!isValidHello(helloJSON([.set("zz", "{\"a\"}")])))
    #expect(!isValidHello(helloJSON([.set("zz", "{\"a\":1,}")])))
    #expect(!isValidHello(helloJSON([.set("zz", "[1 2]")])))
    #expect(!isValidHello(helloJSON([.set("zz", "{1:2}")])))
    #expect(!isValidHello(helloJSON([.set("zz", "[}")])))
    #expect(!isValidHello(helloJSON([.set("zz", "tru")])))
    #expect(!isValidHello(helloJSON([.set("zz", "nul")])))
    #expect(isValidHello(helloJSON([.set("zz", "[ 1 , { \"a\" : [ ] , \"b\" : { } } , \"s\" , true , null ]")])))
    #expect(isValidHello(helloJSON([.set("", "{}")])))
}

@Test func jsonNumbers() {
    for value in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.e5", "--1", "1E+-2"] {
        #expect(!isValidHello(helloJSON([.set("zz", value)])), "\(value)")
    }
    for value in ["1e400", "-1e400", "1.5E+3", "123456789012345678901234567890", "1e-400", "0.000001"] {
        #expect(isValidHello(helloJSON([.set("zz", value)])), "\(value)")
    }
    #expect(hello(helloJSON([.set("tnum", "1e-400")]))?.transportNumber == 0)
    #expect(hello(helloJSON([.set("tnum", "12.5e1")]))?.transportNumber == 125)
    #expect(hello(helloJSON([.set("tnum", "9007199254740992.0")]))?.transportNumber == maxProtocolInteger)
    #expect(hello(helloJSON([.set("tnum", "9.007199254740992e15")]))?.transportNumber == maxProtocolInteger)
    // A double that rounds to 2^53 is in range (Python float semantics); the exact integer 2^53+1 is not.
    #expect(hello(helloJSON([.set("tnum", "9007199254740993.0")]))?.transportNumber == maxProtocolInteger)
    #expect(!isValidHello(helloJSON([.set("tnum", "9007199254740993")])))
    #expect(!isValidHello(helloJSON([.set("tnum", "9007199254740994.0")])))
    #expect(!isValidHello(helloJSON([.set("tnum", "123456789012345678901234567890")])))
    #expect(hello(helloJSON([.set("tnum", "0.3e1")]))?.transportNumber == 3)
    // Python float semantics: this literal rounds to exactly 3.0; the next one does not.
    #expect(hello(helloJSON([.set("tnum", "0.30000000000000001e1")]))?.transportNumber == 3)
    #expect(!isValidHello(helloJSON([.set("tnum", "3.0000000000000004")])))
    #expect(hello(helloJSON([.set("tnum", "1000000000000000000000e-21")]))?.transportNumber == 1)
    #expect(hello(helloJSON([.set("tnum", "00000.00001e5")])) == nil)  // leading zeros are a syntax error
    #expect(hello(helloJSON([.set("tnum", "0.00001e5")]))?.transportNumber == 1)
}

@Test func jsonStrings() {
    let badStrings: [[UInt8]] = [
        [0x22, 0x01, 0x22], [0x22, 0x0A, 0x22], [0x22, 0x09, 0x22], [0x22, 0x7F, 0x22, 0x7F],
        bytes("\"\\x\""), bytes("\"\\u12\""), bytes("\"\\u12G4\""), bytes("\"\\ud800\""), bytes("\"\\udc00\""),
        bytes("\"\\ud800\\u0041\""), bytes("\"\\ud800x\""), bytes("\"\\'\""), bytes("\"abc"),
        [0x22, 0xFF, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xE0, 0x80, 0x80, 0x22],
        [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xF8, 0x88, 0x80, 0x80, 0x22],
        [0x22, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22],
    ]
    let prefix = bytes(helloJSON().dropLast() + ",\"zz\":[")
    for (index, value) in badStrings.enumerated() {
        let json = prefix + value + bytes("]}")
        if index == 3 {
            // 0x7F is allowed raw inside a JSON string; the stray one after the string is not.
            #expect(!isValidHelloBytes(json))
            #expect(isValidHelloBytes(prefix + [0x22, 0x7F, 0x22] + bytes("]}")))
        } else {
            #expect(!isValidHelloBytes(json), "string \(index)")
        }
    }
    let goodStrings: [[UInt8]] = [
        bytes("\"\\ud83d\\ude00\""), bytes("\"\\uD83D\\uDE00\""), [0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22],
        [0x22, 0xC3, 0xA9, 0x22], [0x22, 0xEF, 0xBF, 0xBF, 0x22], [0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22],
        bytes("\"\\b\\f\\n\\r\\t\\/\\\\\\\"\""),
    ]
    for (index, value) in goodStrings.enumerated() {
        #expect(isValidHelloBytes(prefix + value + bytes("]}")), "string \(index)")
    }
    // Nested strings may be non-ASCII; top-level string values may not (known or unknown key).
    #expect(!isValidHello(helloJSON([.set("zz", "\"\u{e9}\"")])))
    #expect(!isValidHello(helloJSON([.set("zz", "\"\\u00e9\"")])))
    #expect(isValidHello(helloJSON([.set("zz", "[\"\u{e9}\"]")])))
    #expect(isValidHello(helloJSON([.set("\u{e9}", "\"ascii\"")])))
}

@Test func duplicateKeysLastWins() {
    let base = helloJSON().dropLast()
    #expect(hello(base + ",\"tnum\":7}")?.transportNumber == 7)
    #expect(hello(base + ",\"tnum\":\"bad\",\"tnum\":8}")?.transportNumber == 8)
    #expect(!isValidHello(base + ",\"tnum\":8,\"tnum\":\"bad\"}"))
    // Non-ASCII top-level strings only count if they are the last value of their key.
    #expect(isValidHello(base + ",\"zz\":\"\u{e9}\",\"zz\":\"a\"}"))
    #expect(!isValidHello(base + ",\"zz\":\"a\",\"zz\":\"\u{e9}\"}"))
    #expect(isValidHello(base + ",\"z\\u007a\":\"\u{e9}\",\"zz\":1}"))
    #expect(!isValidHello(base + ",\"zz\":\"\u{e9}\",\"zy\":1}"))
    #expect(isValidHello(base + ",\"tcpack\":\"\u{e9}\",\"tcpack\":1}"))
    // Escaped key names are decoded before lookup; a NUL makes a different key.
    #expect(hello(base + ",\"t\\u006eum\":9}")?.transportNumber == 9)
    #expect(hello(base + ",\"tnum\\u0000\":9}")?.transportNumber == 0)
}

@Test func sizeLimit() {
    let big = helloJSON([.set("zz", "\"" + String(repeating: "a", count: HelloFrame.maxJSONLength) + "\"")])
    if case .failure(let error) = decodeHello(big) {
        #expect(error.isJSONError && error.description.contains("large"))
    } else {
        Issue.record("oversized hello accepted")
    }
}

@Test func sanitizedForSocket() throws {
    let decoded = try decodeHello(helloJSON([.set("ming", "0"), .set("maxb", "5"), .set("maxt", "7")])).get()
    let sanitized = decoded.sanitizedForSocket()
    #expect(sanitized.streamingResponse && sanitized.maxReceiveBytes == maxProtocolInteger)
    #expect(sanitized.maxOpenTime == nil && sanitized.transportNumber == decoded.transportNumber)
}

@Test func encodingMatchesTheOriginalClient() throws {
    let id = String(repeating: "a", count: 24)
    var primary = HelloFrame(transportNumber: 0, streamID: StreamID(id)!, streamingResponse: false, maxInactivity: 0)
    primary.httpFormat = 2
    primary.requestNewStream = true
    primary.maxReceiveBytes = 300000
    primary.maxOpenTime = 25
    primary.useMyTcpAcks = false
    primary.succeedsTransport = .none
    primary.sack = .initial
    let expected =
        "{\"tnum\":0,\"ver\":2,\"format\":2,\"new\":true,\"id\":\"\(id)\",\"ming\":false,\"maxb\":300000,"
        + "\"maxt\":25,\"maxia\":0,\"tcpack\":false,\"eeds\":null,\"sack\":\"|-1\",\"seenack\":\"|-1\"}H"
    #expect(encodedString(.hello(primary)) == expected)
    #expect(try decodeHello(String(expected.dropLast())).get() == primary)

    var secondary = primary
    secondary.transportNumber = 1
    secondary.requestNewStream = false
    secondary.maxOpenTime = nil
    secondary.succeedsTransport = .absent
    let expectedSecondary =
        "{\"tnum\":1,\"ver\":2,\"format\":2,\"id\":\"\(id)\",\"ming\":false,\"maxb\":300000,\"maxia\":0,"
        + "\"tcpack\":false,\"sack\":\"|-1\",\"seenack\":\"|-1\"}H"
    #expect(encodedString(.hello(secondary)) == expectedSecondary)

    var streaming = primary
    streaming.streamingResponse = true
    streaming.needPaddingBytes = 4096
    streaming.maxInactivity = 10
    streaming.maxOpenTime = 3580
    streaming.sack = SACK(ackNumber: 4, sackList: [6, 9])
    streaming.lastSackSeenByClient = SACK(ackNumber: 2)
    let expectedStreaming =
        "{\"tnum\":0,\"ver\":2,\"format\":2,\"new\":true,\"id\":\"\(id)\",\"ming\":true,\"pad\":4096,"
        + "\"maxb\":300000,\"maxt\":3580,\"maxia\":10,\"tcpack\":false,\"eeds\":null,\"sack\":\"6,9|4\","
        + "\"seenack\":\"|2\"}H"
    #expect(encodedString(.hello(streaming)) == expectedStreaming)
    #expect(try decodeHello(String(expectedStreaming.dropLast())).get() == streaming)

    // Control characters in an id are escaped and survive a round trip.
    var odd = primary
    odd.streamID = StreamID(bytes: [0, 0x1F, 0x22, 0x5C, 0x0A] + bytes(String(repeating: "z", count: 20)))!
    odd.succeedsTransport = .transport(12)
    let wire = Frame.hello(odd).encoded
    #expect(String(decoding: wire, as: UTF8.self).contains("\"id\":\"\\u0000\\u001f\\\"\\\\\\nzz"))
    #expect(try Frame.decode(ArraySlice(wire), direction: .clientToServer).get() == .hello(odd))
}

/// Whether raw bytes form a valid hello.
func isValidHelloBytes(_ json: [UInt8]) -> Bool {
    if case .success = decodeHello(bytes: json) { return true }
    return false
}
