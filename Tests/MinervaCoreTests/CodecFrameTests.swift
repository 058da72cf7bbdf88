import MinervaCore
import MinervaTestSupport
import Testing

// PROTOCOL.md 9, group A (frame codec) and the frame rules of 2.1-2.4.

@Test func case01_seqNumDecodes() {
    #expect(frame("0N") == .seqNum(0))
    #expect(frame("1N") == .seqNum(1))
    #expect(frame("4294967296N") == .seqNum(4_294_967_296))
    #expect(frame("9007199254740992N") == .seqNum(maxProtocolInteger))
    #expect(frame("9007199254740992N", .clientToServer) == .seqNum(maxProtocolInteger))
}

@Test func case02_seqNumInvalid() {
    let zeros = String(repeating: "0", count: 1023) + "N"
    for input in [
        "-1N", "-9007199254740992N", "9007199254740993N", "00N", zeros, "N", "+1N", " 1N", "1 N", "1e3N",
        "5\nN", "0x1N", "12345678901234567N", "1.0N",
    ] {
        #expect(failureKind(input) == .invalidSeqNum, "\(input)")
    }
}

@Test func case03_seqNumEncodes() {
    #expect(encodedString(.seqNum(2)) == "2N")
    #expect(encodedString(.seqNum(0)) == "0N")
    #expect(encodedString(.seqNum(maxProtocolInteger)) == "9007199254740992N")
}

@Test func case04_sackDecodes() {
    for (input, ack) in [("1,4|-1A", -1), ("1,4|0A", 0), ("1,4|1A", 1), ("1,4|9007199254740992A", maxProtocolInteger)] {
        #expect(frame(input) == .sack(SACK(ackNumber: ack, sackList: [1, 4])), "\(input)")
    }
    #expect(frame("|9007199254740992A") == .sack(SACK(ackNumber: maxProtocolInteger, sackList: [])))
    // Decoders do not require sorting, uniqueness or entries above the ack number.
    #expect(frame("4,1,1,0|3A") == .sack(SACK(ackNumber: 3, sackList: [4, 1, 1, 0])))
}

@Test func case05_sackInvalidAckNumbers() {
    for input in [
        "1,4|9007199254740993A", "1,4|-2A", "1,4|-1.01A", "1,4|0.5A", "1,4|1.5A", "1,4|-0A", "1,4|01A",
        "1,4|A", "1,4|1\nA", "1,4| 1A",
    ] {
        #expect(failureKind(input) == .invalidSACK, "\(input)")
    }
}

@Test func case06_sackInvalidListEntries() {
    for input in [
        "1,9007199254740993|4A", "1,-1|4A", "1,0.5|4A", "1,1.5|4A", "1,|3A", ",1|3A", "1,,2|3A", "01|3A",
        "1 ,2|3A",
    ] {
        #expect(failureKind(input) == .invalidSACK, "\(input)")
    }
}

@Test func case07_sackInvalidSplits() {
    for input in ["||4A", "A", "|A", "4A", "1|2|3A"] {
        #expect(failureKind(input) == .invalidSACK, "\(input)")
    }
}

@Test func case08_sackAndStreamStatusEncode() {
    #expect(encodedString(.sack(SACK(ackNumber: 2, sackList: [1, 4]))) == "1,4|2A")
    #expect(encodedString(.sack(SACK(ackNumber: 2, sackList: [4]))) == "4|2A")
    #expect(encodedString(.sack(SACK(ackNumber: 2, sackList: []))) == "|2A")
    #expect(encodedString(.sack(.initial)) == "|-1A")
    #expect(encodedString(.streamStatus(SACK(ackNumber: 2, sackList: [1, 4]))) == "1,4|2T")
    #expect(frame("1,4|-1T") == .streamStatus(SACK(ackNumber: -1, sackList: [1, 4])))
    // Encoders emit the list ascending even if it was built out of order.
    #expect(encodedString(.sack(SACK(ackNumber: 2, sackList: [9, 4, 7]))) == "4,7,9|2A")
}

@Test func case09_oneByteFramesRejectLeadingGarbage() {
    #expect(frame("C") == .streamCreated)
    #expect(frame("Y") == .youCloseIt)
    #expect(failureKind("extra stuffC") == .leadingGarbage)
    #expect(failureKind("extra stuffY") == .leadingGarbage)
    #expect(failureKind(" C") == .leadingGarbage)
    #expect(encodedString(.streamCreated) == "C")
    #expect(encodedString(.youCloseIt) == "Y")
}

@Test func case10_resetEncodes() {
    #expect(encodedString(.reset(reason: slice("the reason"), applicationLevel: false)) == "the reason|0!")
    #expect(encodedString(.reset(reason: slice("the reason"), applicationLevel: true)) == "the reason|1!")
    #expect(encodedString(.reset(reason: slice(""), applicationLevel: false)) == "|0!")
}

@Test func case11_resetDecodes() {
    let table: [(String, String, Bool)] = [
        ("the reason|0!", "the reason", false), ("the | | reason|1!", "the | | reason", true), ("|0!", "", false),
        ("||1!", "|", true), ("|||1!", "||", true), ("|||0!", "||", false),
    ]
    for (input, reason, level) in table {
        for direction in [FrameDirection.clientToServer, .serverToClient] {
            #expect(frame(input, direction) == .reset(reason: slice(reason), applicationLevel: level), "\(input)")
        }
    }
}

@Test func case12_resetInvalid() {
    #expect(failureKind("\u{7f}reason|0!") == .invalidResetReason)
    #expect(failureKind("reason\u{1f}|0!") == .invalidResetReason)
    #expect(failureKind("reason|2!") == .invalidResetFlag)
    #expect(failureKind("reason|01!") == .invalidResetFlag)
    #expect(failureKind("reason|!") == .invalidResetFlag)
    #expect(failureKind("reason!") == .invalidResetFlag)  // no `|` at all: an invalid frame, not a crash (10.6)
    #expect(failureKind("!") == .invalidResetFlag)
    let long255 = String(repeating: "r", count: 255)
    #expect(frame(long255 + "|0!") == .reset(reason: slice(long255), applicationLevel: false))
    #expect(failureKind(long255 + "r|0!") == .invalidResetReason)
    #expect(failureKind(long255 + "r|0!", .clientToServer) == .invalidResetReason)
    #expect(RestrictedString.isValidResetReason(bytes(long255)))
    #expect(!RestrictedString.isValidResetReason(bytes(long255 + "r")))
}

@Test func case13_transportKill() {
    #expect(encodedString(.transportKill(.frameCorruption)) == "frame_corruptionK")
    #expect(frame("frame_corruptionK") == .transportKill(.frameCorruption))
    for reason in KillReason.allCases {
        #expect(frame(reason.rawValue + "K") == .transportKill(reason))
        #expect(encodedString(.transportKill(reason)) == reason.rawValue + "K")
    }
    for input in ["not_a_reasonK", "K", "frame_corruption K", "frame_corruptionxK", "rame_corruptionK"] {
        #expect(failureKind(input) == .unknownKillReason, "\(input)")
    }
}

@Test func case14_stringAndCommentPayloadsAreNotValidated() {
    let raw: [UInt8] = [0] + bytes("unchecked") + [0xFF] + bytes("text")
    let string = try? decode(bytes: raw + [0x20], .clientToServer).get()
    #expect(string == .string(ArraySlice(raw)))
    let comment = try? decode(bytes: raw + bytes("^")).get()
    #expect(comment == .comment(ArraySlice(raw)))
    #expect(frame(" ", .clientToServer) == .string([]))
    #expect(frame("with spaces  ") == .string(slice("with spaces ")))
    #expect(!RestrictedString.isValid(raw))
    #expect(RestrictedString.isValid(bytes(" ~abc")))
    #expect(RestrictedString.isValid([UInt8]()))
    #expect(!RestrictedString.isValid([0x7F]))
    #expect(!RestrictedString.isValid([0x1F]))
}

@Test func directionsAndEmptyFrames() {
    let serverAccepts = Set(bytes("H NA!"))
    let everyType = bytes("H NAT!CY^K")
    for type in everyType {
        let input = [type]
        let toServer = decode(bytes: input, .clientToServer)
        if case .failure(let error) = toServer {
            #expect(serverAccepts.contains(type) || error.kind == .wrongDirection, "\(type)")
        } else {
            #expect(serverAccepts.contains(type))
        }
        if case .failure(let error) = decode(bytes: input, .serverToClient) {
            #expect(type != UInt8(ascii: "C") && type != UInt8(ascii: "Y") && type != UInt8(ascii: " "))
            if type == UInt8(ascii: "H") { #expect(error.kind == .wrongDirection) }
        }
    }
    #expect(failureKind("C", .clientToServer) == .wrongDirection)
    #expect(failureKind("|-1T", .clientToServer) == .wrongDirection)
    #expect(failureKind("beat^", .clientToServer) == .wrongDirection)
    #expect(failureKind("frame_corruptionK", .clientToServer) == .wrongDirection)
    #expect(failureKind("{}H", .serverToClient) == .wrongDirection)
    for direction in [FrameDirection.clientToServer, .serverToClient] {
        #expect(failureKind("", direction) == .emptyFrame)
        #expect(failureKind("?", direction) == .unknownFrameType)
        #expect(failureKind("abcZ", direction) == .unknownFrameType)
        #expect(failureKind("abc\n", direction) == .unknownFrameType)
    }
    if case .failure(let error) = decode(bytes: [0xFF]) {
        #expect(error.kind == .unknownFrameType)
    } else {
        Issue.record("0xFF decoded")
    }
}

@Test func tableDrivenRoundTrips() {
    let frames: [Frame] =
        [
            .string(slice("hello world")), .string([]), .seqNum(0), .seqNum(123_456), .seqNum(maxProtocolInteger),
            .sack(.initial), .sack(SACK(ackNumber: 5, sackList: [7, 9, maxProtocolInteger])),
            .streamStatus(SACK(ackNumber: maxProtocolInteger)), .reset(reason: slice("a|b"), applicationLevel: true),
            .reset(reason: [], applicationLevel: false), .streamCreated, .youCloseIt, .comment(slice(";)]}")),
            .comment(slice("beat")), .comment([]),
        ] + KillReason.allCases.map { Frame.transportKill($0) }
    for original in frames {
        let wire = original.encoded
        #expect(wire.last == original.typeByte)
        #expect((try? Frame.decode(ArraySlice(wire), direction: .serverToClient).get()) == original, "\(original)")
    }
}

@Test func decodedPayloadsAreSlicesOfTheInput() {
    let buffer = bytes("xxhello yy")
    guard case .success(.string(let payload)) = Frame.decode(buffer[2..<8], direction: .clientToServer) else {
        Issue.record("not a string frame")
        return
    }
    #expect(payload.startIndex == 2 && payload.endIndex == 7)
    #expect(Array(payload) == bytes("hello"))
}

@Test func integerGrammar() {
    #expect(ProtocolInteger.parseNonNegative(slice("0")) == 0)
    #expect(ProtocolInteger.parseNonNegative(slice("9007199254740992")) == maxProtocolInteger)
    #expect(ProtocolInteger.parseNonNegative(slice("9999999999999999")) == nil)
    #expect(ProtocolInteger.parseNonNegative(slice("")) == nil)
    #expect(ProtocolInteger.parseNonNegative(slice("1\n")) == nil)
    #expect(ProtocolInteger.parseAckNumber(slice("-1")) == -1)
    #expect(ProtocolInteger.parseAckNumber(slice("-0")) == nil)
    #expect(ProtocolInteger.parseAckNumber(slice("-")) == nil)
    #expect(ProtocolInteger.parseAckNumber(slice("-2")) == nil)
    #expect(ProtocolInteger.parseAckNumber(slice("-10")) == nil)
    #expect(ProtocolInteger.parseAckNumber(slice("7")) == 7)
    var out: [UInt8] = []
    for value: Int64 in [0, 9, 10, 99, 100, -1, -123, Int64.max, Int64.min] {
        out.removeAll()
        ProtocolInteger.append(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == String(value))
    }
}
