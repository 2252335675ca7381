import NIOCore
import NIOHTTP1

/// The message-independent part of HTTP/1.1 reading: finding heads, and delimiting bodies by
/// length, by chunks or by the connection closing. A head that arrives over several reads is
/// gathered in `pending`; everything else is read in place.
struct HTTPMessageReader {
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
        case untilClose
        /// An interim response: drop it and read the next head.
        case skip
    }

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case failed
    }

    private let maxHeadBytes: Int
    private var state = State.head
    /// Unfinished head or chunk-size/trailer line bytes from earlier reads.
    private var pending: [UInt8] = []

    init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    var midMessage: Bool {
        if case .head = state { return !pending.isEmpty }
        if case .failed = state { return false }
        return true
    }

    enum CloseOutcome { case clean, endedBody, truncated }

    mutating func closeInput() -> CloseOutcome {
        switch state {
        case .untilClose:
            state = .head
            return .endedBody
        case .head:
            return pending.isEmpty ? .clean : .truncated
        case .failed:
            return .clean
        default:
            return .truncated
        }
    }

    mutating func run(
        _ input: inout ByteBuffer,
        head: (inout HeadBlock) throws(HTTPWireError) -> Framing,
        body: (ByteBuffer) -> Void,
        end: (HTTPHeaders?) -> Void
    ) throws(HTTPWireError) {
        do {
            try step(&input, head: head, body: body, end: end)
        } catch {
            state = .failed
            pending = []
            throw error
        }
    }

    private mutating func step(
        _ input: inout ByteBuffer,
        head: (inout HeadBlock) throws(HTTPWireError) -> Framing,
        body: (ByteBuffer) -> Void,
        end: (HTTPHeaders?) -> Void
    ) throws(HTTPWireError) {
        while input.readableBytes > 0 {
            switch state {
            case .failed:
                input.moveReaderIndex(to: input.writerIndex)
                return
            case .head:
                guard let framing = try readBlock(&input, limit: maxHeadBytes, trailers: false, head) else { return }
                switch framing {
                case .none: end(nil)
                case .skip: break
                case .length(let n): state = .body(remaining: n)
                case .chunked: state = .chunkSize
                case .untilClose: state = .untilClose
                }
            case .body(let remaining):
                let n = min(remaining, input.readableBytes)
                if let slice = input.readSlice(length: n) { body(slice) }
                if n == remaining {
                    state = .head
                    end(nil)
                } else {
                    state = .body(remaining: remaining - n)
                }
            case .untilClose:
                if let slice = input.readSlice(length: input.readableBytes) { body(slice) }
            case .chunkSize:
                guard let line = try takeLine(&input, limit: 1024, what: "chunk size line") else { return }
                let size = try Self.chunkSize(line)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, input.readableBytes)
                if let slice = input.readSlice(length: n) { body(slice) }
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                // Exactly CRLF: with a bare LF accepted here, a chunk one byte short would take
                // in the CR and the two ends of a connection could disagree on the body.
                guard let line = try takeLine(&input, limit: 0, what: "chunk data end", strictCRLF: true) else { return }
                guard line.isEmpty else { throw .malformed("chunk data longer than its size") }
                state = .chunkSize
            case .trailers:
                let read = { (block: inout HeadBlock) throws(HTTPWireError) -> HTTPHeaders in
                    var unused = FramingFields()
                    return try block.fields(&unused)
                }
                guard let trailers = try readBlock(&input, limit: maxHeadBytes, trailers: true, read) else { return }
                state = .head
                end(trailers.isEmpty ? nil : trailers)
            }
        }
    }

    /// Chunk size: hex digits, then optional extensions after `;` (ignored).
    private static func chunkSize(_ line: [UInt8]) throws(HTTPWireError) -> Int {
        var size = 0
        var digits = 0
        for c in line {
            let v: Int
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = Int(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = Int(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = Int(c - UInt8(ascii: "A") + 10)
            case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                // Whitespace may only come before an extension (RFC 9112 §7.1.1 BWS).
                guard digits > 0, line.drop(while: { $0 != c }).drop(while: { $0 == 0x20 || $0 == 0x09 }).first.map({ $0 == UInt8(ascii: ";") }) ?? true
                else { throw .malformed("invalid chunk size") }
                return size
            default:
                throw .malformed("invalid chunk size")
            }
            if size == 0 && v == 0 && digits > 0 { continue }  // leading zeros do not count toward the limit
            digits += 1
            guard digits <= 15 else { throw .malformed("chunk size too large") }
            size = size << 4 | v
        }
        guard digits > 0 else { throw .malformed("invalid chunk size") }
        return size
    }

    /// One line (without its CRLF), or nil when its end has not arrived yet.
    private mutating func takeLine(_ input: inout ByteBuffer, limit: Int, what: String, strictCRLF: Bool = false) throws(HTTPWireError) -> [UInt8]? {
        guard let newline = input.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            pending.append(contentsOf: input.readableBytesView)
            input.moveReaderIndex(to: input.writerIndex)
            if pending.count > limit + 1 {  // + its CR
                throw .malformed(strictCRLF ? "chunk data longer than its size" : "\(what) too long")
            }
            return nil
        }
        let count = newline - input.readerIndex
        var line = pending
        pending = []
        line.append(contentsOf: input.readableBytesView.prefix(count))
        input.moveReaderIndex(forwardBy: count + 1)
        if line.last == UInt8(ascii: "\r") {
            line.removeLast()
        } else if strictCRLF {
            throw .malformed("\(what) is not CRLF")
        }
        if line.count > limit { throw .malformed(strictCRLF ? "chunk data longer than its size" : "\(what) too long") }
        if line.contains(UInt8(ascii: "\r")) { throw .malformed("stray carriage return in \(what)") }
        return line
    }

    /// A head (start line and fields) or a trailer section: lines up to an empty one, handed to
    /// `read` once complete. Nil when it has not all arrived; more than `limit` bytes of it is
    /// refused (431 for a request). The common case, a whole head in one read, is read in place;
    /// a head split across reads is gathered in `pending`.
    private mutating func readBlock<R>(
        _ input: inout ByteBuffer, limit: Int, trailers: Bool, _ read: (inout HeadBlock) throws(HTTPWireError) -> R
    ) throws(HTTPWireError) -> R? {
        let tooLarge: HTTPWireError = trailers ? .malformed("trailer section too large") : .headTooLarge
        if pending.isEmpty {
            if !trailers {
                // RFC 9112 §2.2: empty lines before a request line are ignored.
                while let first = input.readableBytesView.first, first == UInt8(ascii: "\r") || first == UInt8(ascii: "\n") {
                    input.moveReaderIndex(forwardBy: 1)
                }
            }
            // The limit counts the block without its final line break, however the bytes were
            // split: an unfinished block may already hold that break's CR.
            guard let end = input.withUnsafeReadableBytes({ Self.blockEnd($0) }) else {
                if input.readableBytes > limit + 2 { throw tooLarge }
                pending.append(contentsOf: input.readableBytesView)
                input.moveReaderIndex(to: input.writerIndex)
                return nil
            }
            if end > limit + 2 { throw tooLarge }
            let result = input.withUnsafeReadableBytes { raw in Self.read(UnsafeRawBufferPointer(rebasing: raw[0..<end]), trailers, read) }
            input.moveReaderIndex(forwardBy: end)
            return try result.get()
        }
        let before = pending.count
        pending.append(contentsOf: input.readableBytesView)
        guard let end = pending.withUnsafeBytes({ Self.blockEnd($0) }) else {
            input.moveReaderIndex(to: input.writerIndex)
            if pending.count > limit + 2 { throw tooLarge }
            return nil
        }
        if end > limit + 2 { throw tooLarge }
        input.moveReaderIndex(forwardBy: end - before)
        let bytes = pending
        pending = []
        return try bytes.withUnsafeBytes { raw in Self.read(UnsafeRawBufferPointer(rebasing: raw[0..<end]), trailers, read) }.get()
    }

    private static func read<R>(
        _ bytes: UnsafeRawBufferPointer, _ trailers: Bool, _ read: (inout HeadBlock) throws(HTTPWireError) -> R
    ) -> Result<R, HTTPWireError> {
        var block = HeadBlock(bytes, hasStartLine: !trailers)
        do {
            return .success(try read(&block))
        } catch {
            return .failure(error)
        }
    }

    /// The offset just past the empty line that ends a block, if it is there.
    private static func blockEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var lineStart = 0
        while let newline = HTTPSyntax.index(of: UInt8(ascii: "\n"), in: bytes, from: lineStart) {
            let length = newline - lineStart
            if length == 0 || (length == 1 && bytes[lineStart] == UInt8(ascii: "\r")) { return newline + 1 }
            lineStart = newline + 1
        }
        return nil
    }
}


/// A complete head or trailer block (lines up to the empty one), read line by line in one pass:
/// every check is made on the bytes as each line is read, and only the strings kept are built.
/// Valid only inside the call that hands it out (it points into the connection's buffer).
struct HeadBlock {
    let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var lineNumber = 0
    /// The first line (empty range for a trailer block, which has none).
    private(set) var startLine: Range<Int> = 0..<0

    init(_ bytes: UnsafeRawBufferPointer, hasStartLine: Bool) {
        self.bytes = bytes
        if hasStartLine, let line = nextLine() { startLine = line }
    }

    /// The next line without its line break; nil at the empty line that ends the block.
    private mutating func nextLine() -> Range<Int>? {
        let start = position
        guard start < bytes.count else { return nil }
        var end = HTTPSyntax.index(of: UInt8(ascii: "\n"), in: bytes, from: start) ?? bytes.count
        position = end + 1
        lineNumber += 1
        if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        return end == start ? nil : start..<end
    }

    /// The header fields after the start line, as NIO builds them (names as sent, values without
    /// surrounding whitespace), noting the ones that frame the body.
    mutating func fields(_ framing: inout FramingFields, droppingHopByHop: Bool = false) throws(HTTPWireError) -> HTTPHeaders {
        let bytes = self.bytes  // read inside the walk, which advances `self`
        var fields: [(String, String)] = []
        fields.reserveCapacity(16)
        try forEachField(&framing) { name, value, kind in
            if droppingHopByHop, kind.isHopByHop { return }
            fields.append((FieldName.interned(bytes, name) ?? HTTPSyntax.string(bytes, name), HTTPSyntax.string(bytes, value)))
        }
        if droppingHopByHop, !framing.connectionListed.isEmpty {
            let listed = framing.connectionListed
            fields.removeAll { field in listed.contains { field.0.utf8.count == $0.utf8.count && field.0.lowercased() == $0.lowercased() } }
        }
        return HTTPHeaders(fields)
    }

    /// The end-to-end fields as a proxy forwards them, as wire bytes (`Name: value` and CRLF
    /// each, the name as sent and the value without surrounding whitespace): hop-by-hop fields,
    /// those named by Connection, and Content-Length (the writer frames the body) left out.
    mutating func forwardedFields(_ framing: inout FramingFields, allocator: ByteBufferAllocator) throws(HTTPWireError) -> ByteBuffer {
        let bytes = self.bytes  // read inside the walk, which advances `self`
        var kept: [(name: Range<Int>, value: Range<Int>)] = []
        kept.reserveCapacity(16)
        try forEachField(&framing) { name, value, kind in
            if kind == .other { kept.append((name, value)) }
        }
        if !framing.connectionListed.isEmpty {
            let listed = framing.connectionListed.map { $0.lowercased() }
            kept.removeAll { field in listed.contains(HTTPSyntax.string(bytes, field.name).lowercased()) }
        }
        var size = 0
        for field in kept { size += field.name.count + field.value.count + 4 }
        var out = allocator.buffer(capacity: size)
        let source = bytes
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { target in
            var i = 0
            for field in kept { i = HTTPHeadWriter.field(source, name: field.name, value: field.value, to: target, at: i) }
            return i
        }
        return out
    }

    /// Walks the header fields after the start line, checking each and noting the ones that
    /// frame the body; `body` gets the name and trimmed value ranges.
    mutating func forEachField(
        _ framing: inout FramingFields, _ body: (Range<Int>, Range<Int>, FieldName.Kind) -> Void
    ) throws(HTTPWireError) {
        while let line = nextLine() {
            let first = bytes[line.lowerBound]
            if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                throw .malformed("obsolete line folding on header line \(lineNumber)")
            }
            var colon = line.lowerBound
            while colon < line.upperBound, HTTPSyntax.isTokenByte(bytes[colon]) { colon += 1 }
            guard colon > line.lowerBound, colon < line.upperBound, bytes[colon] == UInt8(ascii: ":") else {
                throw .malformed("invalid header name on line \(lineNumber)")
            }
            var start = colon + 1
            var end = line.upperBound
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            guard HTTPSyntax.isFieldValue(bytes, start..<end) else {
                throw .malformed("control character in header value on line \(lineNumber)")
            }
            let nameRange = line.lowerBound..<colon
            let kind = FieldName.kind(bytes, nameRange)
            framing.note(kind, bytes, start..<end)
            body(nameRange, start..<end, kind)
        }
    }
}
