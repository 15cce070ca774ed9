import Foundation

/// Text a user gave (a data file, a vocabulary, standard input), read the same way everywhere:
/// UTF-8 with an optional byte-order mark, lines ended by `\n` or `\r\n` (Windows-made files
/// read as Unix ones). Invalid UTF-8 is an error naming the line and the byte offset.
public enum TextFile {
    /// The lines of the file at `path`, without their endings.
    public static func lines(atPath path: String) throws -> [Substring] {
        lines(of: try text(path))
    }

    /// The file at `path` as a string.
    public static func text(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read" : "no such file"
            throw InputError(path, reason)
        }
        return try decode(data, source: path)
    }

    /// Everything on standard input, as lines.
    public static func standardInputLines() throws -> [Substring] {
        lines(of: try decode(FileHandle.standardInput.readDataToEndOfFile(), source: "standard input"))
    }

    /// `data` as UTF-8 text, its byte-order mark dropped; `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws -> String {
        var bytes = data[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        throw InputError(source, invalidUTF8Place(bytes))
    }

    /// Where the first invalid UTF-8 sequence of `bytes` starts, in words.
    private static func invalidUTF8Place(_ bytes: Data.SubSequence) -> String {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = bytes.startIndex
        var line = 1, lineStart = offset
        while case .scalarValue(let scalar) = decoder.decode(&iterator) {
            offset += UTF8.width(scalar)
            if scalar == "\n" { line += 1; lineStart = offset }
        }
        return "line \(line): invalid UTF-8 at byte offset \(offset) (column \(offset - lineStart + 1) of the line)"
    }

    /// The lines of `text`: split at `\n`, a `\r` before it dropped, no empty line after a final `\n`.
    public static func lines(of text: String) -> [Substring] {
        var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { slice in
            let line = Substring(slice)
            guard line.utf8.last == UInt8(ascii: "\r") else { return line }
            return line[..<line.utf8.index(before: line.endIndex)]
        }
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }
}
