import Foundation

/// Typed access to a JSON object's fields, with errors naming the file and the field.
public struct JSONFields {
    public let json: [String: Any]
    public let source: String
    public init(_ json: [String: Any], source: String) {
        self.json = json
        self.source = source
    }

    /// The JSON object in the file at `path`: invalid UTF-8 and JSON errors name the line.
    public init(contentsOf path: String) throws {
        let text = try TextFile.text(path)
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw InputError(path, "not valid JSON" + (reason.map { " (\($0))" } ?? ""))
        }
        guard let object = parsed as? [String: Any] else { throw InputError(path, "not a JSON object") }
        self.init(object, source: path)
    }

    private func value<T>(_ key: String, _ type: String, default fallback: T?, _ convert: (Any) -> T?) throws -> T {
        guard let raw = json[key], !(raw is NSNull) else {
            if let fallback { return fallback }
            throw InputError(source, "missing field '\(key)'")
        }
        guard let typed = convert(raw) else { throw InputError(source, "field '\(key)' is not \(type)") }
        return typed
    }

    public func string(_ key: String, default fallback: String? = nil) throws -> String {
        try value(key, "a string", default: fallback) { $0 as? String }
    }
    public func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        try value(key, "an integer", default: fallback) { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }
    }
    public func float(_ key: String, default fallback: Float? = nil) throws -> Float {
        try value(key, "a number", default: fallback) { ($0 as? NSNumber).map { Float($0.doubleValue) } }
    }
    public func bool(_ key: String, default fallback: Bool? = nil) throws -> Bool {
        try value(key, "true or false", default: fallback) { $0 as? Bool }
    }
    public func strings(_ key: String) throws -> [String] {
        try value(key, "a list of strings", default: nil) { ($0 as? [String]) ?? ($0 as? String).map { [$0] } }
    }
    public func ints(_ key: String) throws -> [Int] {
        try value(key, "a list of integers", default: nil) { $0 as? [Int] }
    }
}
