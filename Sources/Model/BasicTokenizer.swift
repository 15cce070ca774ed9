import Foundation

/// BERT's normalizer and pre-tokenizer, as `BertNormalizer` + `BertPreTokenizer`
/// in Hugging Face tokenizers: removes control characters and maps whitespace to
/// spaces, puts spaces around CJK ideographs, optionally strips accents and
/// lower-cases, then splits on whitespace and isolates every punctuation character.
///
/// Character classes follow Hugging Face's exactly, edge cases included: whitespace is Unicode's
/// White_Space property (U+2028 and U+2029 among it), while controls, punctuation and the marks
/// accent stripping drops come from Unicode 8.0's categories, the tables tokenizers is built with,
/// so a character assigned later (a newer combining mark or symbol) stays part of its word, and
/// unassigned code points are kept (and end as `[UNK]`), not dropped.
public struct BasicTokenizer: Sendable {
    public var lowercase: Bool
    public var stripAccents: Bool
    public var splitChineseCharacters: Bool

    public init(lowercase: Bool = true, stripAccents: Bool? = nil, splitChineseCharacters: Bool = true) {
        self.lowercase = lowercase
        // As in BERT: unset means "strip accents when lower-casing".
        self.stripAccents = stripAccents ?? lowercase
        self.splitChineseCharacters = splitChineseCharacters
    }

    /// The words of `text`, normalized, in order.
    public func words(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if Self.isWhitespace(scalar) {
                cleaned.append(" ")
            } else if splitChineseCharacters && Self.isChineseCharacter(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        var normalized = String(cleaned)
        if stripAccents {
            normalized = String(String.UnicodeScalarView(
                normalized.decomposedStringWithCanonicalMapping.unicodeScalars
                    .filter { Self.category($0) != .nonspacingMark }))
        }
        if lowercase { normalized = normalized.lowercased() }

        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() {
            if !current.isEmpty { words.append(String(current)) }
            current = String.UnicodeScalarView()
        }
        for scalar in normalized.unicodeScalars {
            if Self.isWhitespace(scalar) {
                flush()
            } else if Self.isPunctuation(scalar) {
                flush()
                words.append(String(scalar))
            } else {
                current.append(scalar)
            }
        }
        flush()
        return words
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case " ", "\t", "\n", "\r": true
        default: scalar.properties.isWhitespace
        }
    }

    /// The general category as Unicode 8.0 had it: later characters were unassigned then.
    static func category(_ scalar: Unicode.Scalar) -> Unicode.GeneralCategory {
        guard let age = scalar.properties.age, age.major < 8 || (age.major == 8 && age.minor == 0) else {
            return .unassigned
        }
        return scalar.properties.generalCategory
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "\t", "\n", "\r": return false
        default: break
        }
        switch category(scalar) {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        // BERT counts every non-alphanumeric ASCII symbol as punctuation ("$", "^", "`"),
        // though Unicode does not.
        let v = scalar.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
            return true
        }
        switch category(scalar) {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK Unified Ideographs blocks, as Hugging Face's normalizer lists them (its extension E
    /// range starts at U+2B920 where BERT's Python has U+2B820).
    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            true
        default:
            false
        }
    }
}
