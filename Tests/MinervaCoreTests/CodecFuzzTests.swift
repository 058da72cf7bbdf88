import MinervaCore
import MinervaTestSupport
import Testing

// Deterministic random inputs: the decoders never trap, and what decodes re-encodes to a decodable equal value.

@Test func mutatedHellosNeverTrap() {
    var random = SeededGenerator(seed: 42)
    let original = bytes(helloJSON([.set("eeds", "null"), .set("sack", "\"1,3|0\""), .set("zz", "[1,{\"a\":\"b\"}]")]))
    let alphabet = bytes("{}[]\":,\\u0123456789-+.eE tnrfalsx|") + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xED, 0xFF]
    var valid = 0
    for _ in 0..<20000 {
        var input = original
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let position = Int.random(in: 0..<input.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0: input[position] = alphabet.randomElement(using: &random)!
            case 1: input.remove(at: position)
            default: input.insert(alphabet.randomElement(using: &random)!, at: position)
            }
            if input.isEmpty { input = [0x7B] }
        }
        let direct = HelloFrame.decode(json: ArraySlice(input))
        let framed = Frame.decode(ArraySlice(input + [UInt8(ascii: "H")]), direction: .clientToServer)
        switch (direct, framed) {
        case (.success(let hello), .success(.hello(let other))):
            #expect(hello == other)
            valid += 1
            // A valid hello re-encodes to one that decodes to the same values (unknown keys aside).
            var wire: [UInt8] = []
            hello.encode(into: &wire)
            // Encoders sort SACK lists, so compare with the lists sorted.
            var sorted = hello
            sorted.sack?.sackList.sort()
            sorted.lastSackSeenByClient.sackList.sort()
            #expect((try? HelloFrame.decode(json: ArraySlice(wire)).get()) == sorted)
        case (.failure, .failure(let error)):
            #expect(error.kind == .invalidHello)
        default:
            Issue.record("HelloFrame.decode and Frame.decode disagree on \(input)")
        }
    }
    #expect(valid > 0)
}

@Test func randomFramesNeverTrapAndRoundTrip() {
    var random = SeededGenerator(seed: 7)
    let alphabet = bytes("0123456789|,-!^ NATCYKH|01xab") + [0x00, 0x7F, 0xFF, 0x0A]
    for _ in 0..<50000 {
        let length = Int.random(in: 0...12, using: &random)
        let input = (0..<length).map { _ in alphabet.randomElement(using: &random)! }
        for direction in [FrameDirection.clientToServer, .serverToClient] {
            guard case .success(let frame) = Frame.decode(ArraySlice(input), direction: direction) else { continue }
            let again = try? Frame.decode(ArraySlice(frame.encoded), direction: direction).get()
            switch frame {
            case .sack(let sack), .streamStatus(let sack):
                // Encoders sort the list; the values survive.
                let decodedSACK: SACK? =
                    switch again {
                    case .sack(let value), .streamStatus(let value): value
                    default: nil
                    }
                #expect(decodedSACK?.ackNumber == sack.ackNumber)
                #expect(decodedSACK?.sackList == sack.sackList.sorted())
            default:
                #expect(frame.encoded == input, "\(input)")
                #expect(again == frame)
            }
        }
    }
}
