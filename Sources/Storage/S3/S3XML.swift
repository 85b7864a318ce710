import Foundation

/// A tiny XML reader for S3 responses (`<Error>`, `<ListBucketResult>`, `<InitiateMultipartUploadResult>`,
/// `<CompleteMultipartUploadResult>`): elements, text and the predefined and numeric entities.
///
/// S3 documents are small, flat and attribute-free apart from namespaces, so this avoids a dependency on libxml2
/// (FoundationXML) in the sidecar. Namespace prefixes are dropped from element names. Not a validating parser:
/// malformed input gives nil or a partial tree.
struct S3XML {
    final class Element {
        let name: String
        var text = ""
        var children: [Element] = []

        init(name: String) { self.name = name }

        /// The first child called `name`.
        func child(_ name: String) -> Element? { children.first { $0.name == name } }
        /// Every child called `name`.
        func children(_ name: String) -> [Element] { children.filter { $0.name == name } }
        /// The text of the first child called `name`.
        func value(_ name: String) -> String? { child(name)?.text }
    }

    /// The root element of `bytes`, or nil when there is none.
    static func parse(_ bytes: [UInt8]) -> Element? {
        parse(String(decoding: bytes, as: UTF8.self))
    }

    static func parse(_ document: String) -> Element? {
        let scalars = Array(document.unicodeScalars)
        var index = 0
        var stack: [Element] = []
        var root: Element?

        func startsWith(_ literal: String) -> Bool {
            var position = index
            for scalar in literal.unicodeScalars {
                guard position < scalars.count, scalars[position] == scalar else { return false }
                position += 1
            }
            return true
        }
        func skip(past literal: String) {
            while index < scalars.count && !startsWith(literal) { index += 1 }
            index = min(scalars.count, index + literal.unicodeScalars.count)
        }

        while index < scalars.count {
            if scalars[index] != "<" {
                var text = String.UnicodeScalarView()
                while index < scalars.count && scalars[index] != "<" {
                    text.append(scalars[index])
                    index += 1
                }
                stack.last?.text += decodeEntities(String(text))
                continue
            }
            if startsWith("<?") { skip(past: "?>"); continue }
            if startsWith("<!--") { skip(past: "-->"); continue }
            if startsWith("<![CDATA[") {
                index += 9
                var text = String.UnicodeScalarView()
                while index < scalars.count && !startsWith("]]>") {
                    text.append(scalars[index])
                    index += 1
                }
                index = min(scalars.count, index + 3)
                stack.last?.text += String(text)
                continue
            }
            if startsWith("<!") { skip(past: ">"); continue }
            // A tag: read up to '>' (attribute values in S3 responses never contain '>').
            index += 1
            var tag = String.UnicodeScalarView()
            while index < scalars.count && scalars[index] != ">" {
                tag.append(scalars[index])
                index += 1
            }
            index += 1
            var body = String(tag).trimmingCharacters(in: .whitespacesAndNewlines)
            if body.hasPrefix("/") {
                guard let element = stack.popLast() else { return root }
                if stack.isEmpty { root = element }
                continue
            }
            let selfClosing = body.hasSuffix("/")
            if selfClosing { body.removeLast() }
            var name = String(body.prefix { !$0.isWhitespace })
            if let colon = name.lastIndex(of: ":") { name = String(name[name.index(after: colon)...]) }
            let element = Element(name: name)
            if let parent = stack.last {
                parent.children.append(element)
            } else if root != nil {
                return root  // content after the root element
            }
            if selfClosing {
                if stack.isEmpty { root = element }
            } else {
                stack.append(element)
            }
        }
        return root ?? stack.first
    }

    /// Replaces `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&#NN;` `&#xHH;`.
    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let ampersand = rest.firstIndex(of: "&") {
            out += rest[..<ampersand]
            guard let semicolon = rest[ampersand...].firstIndex(of: ";"),
                  rest.distance(from: ampersand, to: semicolon) <= 10
            else {
                out += "&"
                rest = rest[rest.index(after: ampersand)...]
                continue
            }
            let entity = rest[rest.index(after: ampersand)..<semicolon]
            var replacement: String?
            switch entity {
            case "amp": replacement = "&"
            case "lt": replacement = "<"
            case "gt": replacement = ">"
            case "quot": replacement = "\""
            case "apos": replacement = "'"
            default:
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    replacement = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
                } else if entity.hasPrefix("#") {
                    replacement = UInt32(entity.dropFirst(1)).flatMap(Unicode.Scalar.init).map { String($0) }
                }
            }
            if let replacement {
                out += replacement
                rest = rest[rest.index(after: semicolon)...]
            } else {
                out += "&"
                rest = rest[rest.index(after: ampersand)...]
            }
        }
        return out + rest
    }

    /// Escapes text for an XML element body.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}
