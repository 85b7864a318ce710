public import StackVaultCore

/// Counts, as a dump streams past on its way into the archive, the databases and each table's rows it carries
/// (``DumpContents``); every byte is passed on unchanged. One per dump, used from one thread.
///
/// The formats read are the plain SQL output of `pg_dumpall` (PostgreSQL 10 and later: `\connect` lines, `COPY
/// schema.table (columns) FROM stdin;` blocks ending with a `\.` line, one row per line, as the `COPY` text format
/// escapes newlines) and of `mariadb-dump`/`mysqldump` (`USE` lines, `CREATE TABLE`, extended `INSERT INTO ...
/// VALUES (...),(...);` statements with `'...'` strings that escape by backslash or by doubling the quote, and
/// `DELIMITER ;;` sections for routines, triggers and events, which are skipped).
/// Limits: a line of a function body or a routine outside `DELIMITER` that starts like a data statement would be
/// counted; the dumps' own output never does this outside of such bodies.
public final class DumpScanner: ByteSink {
    /// The dump formats StackVault can count.
    public enum Dialect: Sendable {
        case postgres
        case mariadb
    }

    private let downstream: any ByteSink
    private let dialect: Dialect
    /// The first bytes of the line being read (enough for any statement head: identifiers are at most 64 bytes).
    private var head: [UInt8] = []
    private static let headLimit = 1024
    private var lineLength = 0
    private var state = State.lines
    private var currentDatabase = ""
    private var databases: [String] = []
    private var knownDatabases: Set<String> = []
    private var tables: [DumpContents.Table] = []
    private var tableIndex: [String: Int] = [:]

    private enum State {
        /// Reading lines, looking at their heads.
        case lines
        /// PostgreSQL: inside a `COPY` block of table `table`; each line is a row until `\.`.
        case copy(table: Int)
        /// MariaDB: inside the values of an `INSERT` into table `table`.
        case insert(table: Int, depth: Int, quote: UInt8?, escaped: Bool)
        /// MariaDB: inside a `DELIMITER ;;` section (routines, triggers, events), until `DELIMITER ;`.
        case delimited
    }

    public init(_ dialect: Dialect, downstream: any ByteSink) {
        self.dialect = dialect
        self.downstream = downstream
        head.reserveCapacity(Self.headLimit)
    }

    /// What was counted so far (complete once the dump has ended).
    public var contents: DumpContents { DumpContents(databases: databases, tables: tables) }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream.write(bytes)
        var index = 0
        let count = bytes.count
        while index < count {
            if case .insert = state {
                index = scanInsert(bytes, from: index)
                continue
            }
            // Line mode: find the end of the line, keeping its head.
            let rest = UnsafeRawBufferPointer(rebasing: bytes[index...])
            let newline = rest.firstIndex(of: UInt8(ascii: "\n")).map { index + $0 }
            let end = newline ?? count
            let before = head.count
            // A row of a COPY block is only looked at for its first two bytes (the `\.` that ends the block).
            let limit: Int
            if case .copy = state { limit = 2 } else { limit = Self.headLimit }
            if before < limit {
                let take = min(end - index, limit - before)
                head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)]))
                if let values = insertValuesStart(), values >= before {
                    // An INSERT's values begin here: scan them byte by byte from just after `VALUES`.
                    index += values - before
                    head.removeAll(keepingCapacity: true)
                    lineLength = 0
                    continue
                }
            }
            lineLength += end - index
            guard let newline else { return }
            index = newline + 1
            endOfLine()
            head.removeAll(keepingCapacity: true)
            lineLength = 0
        }
    }

    /// MariaDB, at a line's head `INSERT INTO `name` VALUES`: enters `.insert` for that table and returns the
    /// index in `head` just after `VALUES`; nil for any other line (or while the head is still incomplete).
    private func insertValuesStart() -> Int? {
        guard dialect == .mariadb, case .lines = state, startsWith("INSERT INTO `"),
              let name = Self.backquoted(head, from: 12)
        else { return nil }
        let keyword = Array(" VALUES".utf8)
        guard head.count >= name.end + keyword.count, Array(head[name.end..<(name.end + keyword.count)]) == keyword
        else { return nil }
        let row = table(database: currentDatabase, schema: nil, name: name.value)
        state = .insert(table: row, depth: 0, quote: nil, escaped: false)
        return name.end + keyword.count
    }

    // MARK: - Lines

    /// Handles the line whose head is in `head` (an INSERT's values never get here: see `insertValuesStart`).
    private func endOfLine() {
        switch state {
        case .copy(let table):
            if lineLength == 2 && head.starts(with: [0x5C, 0x2E]) {  // \.
                state = .lines
            } else {
                tables[table].rows += 1
            }
        case .delimited:
            if startsWith("DELIMITER ;"), lineLength == 11 || head.dropFirst(11).allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
                state = .lines
            }
        case .insert:
            break
        case .lines:
            switch dialect {
            case .postgres: postgresLine()
            case .mariadb: mariadbLine()
            }
        }
    }

    private func startsWith(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard head.count >= count else { return false }
        return prefix.withUTF8Buffer { buffer in
            for i in 0..<count where head[i] != buffer[i] { return false }
            return true
        }
    }

    private func addDatabase(_ name: String) {
        currentDatabase = name
        if knownDatabases.insert(name).inserted { databases.append(name) }
    }

    private func table(database: String, schema: String?, name: String) -> Int {
        let key = "\(database)\u{0}\(schema ?? "")\u{0}\(name)"
        if let index = tableIndex[key] { return index }
        tables.append(DumpContents.Table(database: database, schema: schema, name: name, rows: 0))
        tableIndex[key] = tables.count - 1
        return tables.count - 1
    }

    // MARK: - PostgreSQL

    private func postgresLine() {
        if startsWith("\\connect ") {
            if let name = Self.postgresConnectTarget(Array(head.dropFirst(9))) { addDatabase(name) }
        } else if startsWith("COPY "),
                  let (schema, name) = Self.postgresCopyTable(Array(head.dropFirst(5)),
                                                              complete: lineLength == head.count)
        {
            state = .copy(table: table(database: currentDatabase, schema: schema, name: name))
        }
    }

    /// The database of a `\connect` line's argument: `name`, `"quoted ""name"""`, or
    /// `-reuse-previous=on "dbname='it\'s'"` (psql double quotes around a libpq connection string).
    static func postgresConnectTarget(_ argument: [UInt8]) -> String? {
        var words = psqlWords(argument)
        if words.first == "-reuse-previous=on" { words.removeFirst() }
        guard let word = words.first else { return nil }
        if word.hasPrefix("dbname=") { return connectionStringValue(String(word.dropFirst(7))) }
        return word
    }

    /// Splits a psql meta-command's arguments: blanks separate words; `"..."` quotes, `""` inside is a quote.
    private static func psqlWords(_ bytes: [UInt8]) -> [String] {
        var words: [String] = []
        var word: [UInt8] = []
        var inWord = false
        var quoted = false
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if quoted {
                if byte == 0x22 {
                    if i + 1 < bytes.count && bytes[i + 1] == 0x22 { word.append(0x22); i += 1 } else { quoted = false }
                } else {
                    word.append(byte)
                }
            } else if byte == 0x22 {
                quoted = true
                inWord = true
            } else if byte == 0x20 || byte == 0x09 || byte == 0x0D {
                if inWord { words.append(String(decoding: word, as: UTF8.self)); word = []; inWord = false }
            } else {
                word.append(byte)
                inWord = true
            }
            i += 1
        }
        if inWord { words.append(String(decoding: word, as: UTF8.self)) }
        return words
    }

    /// A libpq connection string value: bare, or in `'...'` with `\'` and `\\` escapes.
    private static func connectionStringValue(_ value: String) -> String {
        guard value.hasPrefix("'") else { return value }
        var out = ""
        var escaped = false
        for character in value.dropFirst() {
            if escaped { out.append(character); escaped = false }
            else if character == "\\" { escaped = true }
            else if character == "'" { break }
            else { out.append(character) }
        }
        return out
    }

    /// The schema and table of `schema.table (columns) FROM stdin;`, each bare or in `"..."` with `""` escapes;
    /// `complete` is false when `bytes` is only the head of a longer line (its end is not checked then).
    static func postgresCopyTable(_ bytes: [UInt8], complete: Bool) -> (String?, String)? {
        var parts: [String] = []
        var i = 0
        while i < bytes.count {
            var part: [UInt8] = []
            if bytes[i] == 0x22 {
                i += 1
                while i < bytes.count {
                    if bytes[i] == 0x22 {
                        if i + 1 < bytes.count && bytes[i + 1] == 0x22 { part.append(0x22); i += 2; continue }
                        i += 1
                        break
                    }
                    part.append(bytes[i])
                    i += 1
                }
            } else {
                while i < bytes.count, bytes[i] != 0x2E, bytes[i] != 0x20, bytes[i] != 0x28 {
                    part.append(bytes[i])
                    i += 1
                }
            }
            parts.append(String(decoding: part, as: UTF8.self))
            guard i < bytes.count, bytes[i] == 0x2E else { break }
            i += 1
        }
        let rest = String(decoding: bytes[min(i, bytes.count)...], as: UTF8.self)
        guard !complete || rest.hasSuffix("FROM stdin;"), let name = parts.last, !name.isEmpty, parts.count <= 2 else {
            return nil
        }
        return (parts.count == 2 ? parts[0] : nil, name)
    }

    // MARK: - MariaDB

    private func mariadbLine() {
        if startsWith("USE `") {
            if let name = Self.backquoted(head, from: 4) { addDatabase(name.value) }
        } else if startsWith("CREATE TABLE `") {
            if let name = Self.backquoted(head, from: 13) {
                _ = table(database: currentDatabase, schema: nil, name: name.value)
            }
        } else if startsWith("DELIMITER ;;") {
            state = .delimited
        }
    }

    /// A `` `name` `` identifier starting at `start` (the opening backquote), with ``` `` ``` for a backquote;
    /// returns the name and the index after the closing backquote.
    static func backquoted(_ bytes: [UInt8], from start: Int) -> (value: String, end: Int)? {
        guard start < bytes.count, bytes[start] == 0x60 else { return nil }
        var name: [UInt8] = []
        var i = start + 1
        while i < bytes.count {
            if bytes[i] == 0x60 {
                if i + 1 < bytes.count && bytes[i + 1] == 0x60 { name.append(0x60); i += 2; continue }
                return (String(decoding: name, as: UTF8.self), i + 1)
            }
            name.append(bytes[i])
            i += 1
        }
        return nil
    }

    /// Scans the values of an INSERT from `start`: counts top-level `(` tuples, skips strings, ends at `;`.
    private func scanInsert(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard case .insert(let table, var depth, var quote, var escaped) = state else { return start }
        var rows: Int64 = 0
        var i = start
        let count = bytes.count
        defer { tables[table].rows += rows }
        while i < count {
            let byte = bytes[i]
            i += 1
            if let open = quote {
                if escaped { escaped = false }
                else if byte == 0x5C { escaped = true }
                else if byte == open { quote = nil }  // a doubled quote reopens at once: same count
                continue
            }
            switch byte {
            case 0x27, 0x22: quote = byte
            case 0x28:
                if depth == 0 { rows += 1 }
                depth += 1
            case 0x29: depth -= 1
            case 0x3B where depth == 0:
                state = .lines
                return i
            default: break
            }
        }
        state = .insert(table: table, depth: depth, quote: quote, escaped: escaped)
        return i
    }
}
