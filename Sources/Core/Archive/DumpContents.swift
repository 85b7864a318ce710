/// What a logical dump holds, counted as the dump streamed into the archive: its databases and, for each table
/// whose data the dump carries, the rows it carries. A restore drill compares a replay against these counts.
///
/// Recorded in the manifest (`contents` of a `.file` component) by the dump strategies; `nil` in archives written
/// by earlier versions, and for dumps of a kind StackVault cannot count.
public struct DumpContents: Codable, Sendable, Hashable {
    /// One table and the rows the dump's data section for it carries.
    public struct Table: Codable, Sendable, Hashable {
        /// The database (PostgreSQL: as in `\connect`; MariaDB: as in `USE`).
        public var database: String
        /// PostgreSQL's schema (`public`); `nil` for MariaDB, where the database is the schema.
        public var schema: String?
        /// The table's name, unquoted.
        public var name: String
        /// Rows in the dump: lines of a `COPY ... FROM stdin` block, or value tuples of `INSERT INTO` statements.
        public var rows: Int64

        public init(database: String, schema: String? = nil, name: String, rows: Int64) {
            self.database = database
            self.schema = schema
            self.name = name
            self.rows = rows
        }

        /// `db.schema.table` or `db.table`, for messages.
        public var qualifiedName: String {
            [database, schema, name].compactMap { $0 }.joined(separator: ".")
        }
    }

    /// Every database the dump creates or connects to, in dump order, each once.
    public var databases: [String]
    /// Every table with a data section (PostgreSQL) or a `CREATE TABLE` (MariaDB), in dump order; tables without
    /// rows are listed with 0.
    public var tables: [Table]

    public init(databases: [String] = [], tables: [Table] = []) {
        self.databases = databases
        self.tables = tables
    }

    /// The sum of all tables' rows.
    public var totalRows: Int64 { tables.reduce(0) { $0 + $1.rows } }
}
