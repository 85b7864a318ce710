public import StackVaultCore
import Foundation

/// What the drill support of the dump strategies shares: polling a fresh server until it serves, and reading
/// the counting scripts' output.
enum DrillSupport {
    /// Runs `probe` in `container` every 500 ms until it exits 0; throws when the container stops or `timeout`
    /// passes (naming `server` and the probe's last error text).
    static func waitUntilReady(_ container: ContainerDetails, docker: any DockerEngine, timeout: Duration,
                               server: String, probe: String) async throws
    {
        let shell = ContainerShell(docker: docker, container: container, place: "drill container \(container.name)")
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = ""
        while clock.now < deadline {
            guard try await docker.inspectContainer(container.id).isRunning else {
                throw StackVaultError(.restoreFailed, "the \(server) server of drill container \(container.name) "
                    + "stopped while starting (image \(container.image)): killed for lack of memory (raise "
                    + "DRILL_MEMORY_LIMIT) or failed to start with the archive's settings; the drill container is "
                    + "removed, so run the image by hand to see its log")
            }
            if let outcome = try? await shell.outcome(probe) {
                if outcome.exitCode == 0 { return }
                last = outcome.stderr
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw StackVaultError(.restoreFailed, "the \(server) server of drill container \(container.name) did not "
            + "serve within \(Int(timeout.seconds)) s" + (last.isEmpty ? "" : ": \(last)"))
    }

    /// Counting statements in batches small enough for one exec argument (Linux caps one at 128 KiB).
    static func batches<T>(_ items: [T], size: Int = 400) -> [ArraySlice<T>] {
        stride(from: 0, to: items.count, by: size).map { items[$0..<min($0 + size, items.count)] }
    }

    /// Parses `<index><separator><count>` lines into counts by index; other lines are ignored.
    static func counts(_ output: String, separator: Character) -> [Int: Int64] {
        var counts: [Int: Int64] = [:]
        for line in output.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: separator)
            if fields.count == 2, let index = Int(fields[0]), let count = Int64(fields[1]) { counts[index] = count }
        }
        return counts
    }

    /// `expected`'s tables that were counted (by index into `expected.tables`), in its order, with the counts.
    static func tables(_ expected: DumpContents, _ counted: [Int: Int64]) -> [DumpContents.Table] {
        expected.tables.enumerated().compactMap { index, table in
            counted[index].map { rows in
                var found = table
                found.rows = rows
                return found
            }
        }
    }

    /// The lower-case hex digits of `text`'s UTF-8 bytes, for SQL hex literals (no quoting to get wrong).
    static func hex(_ text: String) -> String {
        text.utf8.map { String(format: "%02x", $0) }.joined()
    }
}

extension PgDumpAllStrategy: DrillStrategy {
    public func drillEnvironment(password: String) -> [String] {
        ["POSTGRES_PASSWORD=\(password)"]
    }

    public func waitUntilReady(_ container: ContainerDetails, docker: any DockerEngine, timeout: Duration)
        async throws
    {
        // The image's entrypoint initialises the cluster with a temporary server, then execs postgres as PID 1.
        try await DrillSupport.waitUntilReady(container, docker: docker, timeout: timeout, server: "PostgreSQL",
            probe: Self.passwordLogin + #"""
                [ "$(cat /proc/1/comm)" = postgres ] || { echo "still initialising" >&2; exit 1; }
                psql -X -q --no-password --username="${POSTGRES_USER:-postgres}" --dbname=postgres \
                    -c 'SELECT 1' >/dev/null
                """#)
    }

    public func replayedContents(of expected: DumpContents, in container: ContainerDetails,
                                 docker: any DockerEngine) async throws -> DumpContents
    {
        let shell = ContainerShell(docker: docker, container: container, place: "drill container \(container.name)")
        // One psql per database and batch: a database that does not exist prints nothing; a table that does not
        // exist fails its statement only (no ON_ERROR_STOP).
        let script = Self.passwordLogin + #"""
            printf '%s\n' "$2" | psql -X -q -A -t -F '|' --no-password --username="${POSTGRES_USER:-postgres}" \
                --dbname="$1" 2>/dev/null || true
            """#
        var found = DumpContents()
        var counted: [Int: Int64] = [:]
        let indexed = Array(expected.tables.enumerated())
        for database in expected.databases {
            let tables = indexed.filter { $0.element.database == database }
            var exists = false
            for batch in DrillSupport.batches(tables).ifEmpty([[]]) {
                let sql = (["SELECT 'database exists';"] + batch.map { index, table in
                    // ONLY: a parent's count must not include its inheritance children's rows, which the dump
                    // carries in their own COPY blocks.
                    let name = "\(Self.quoted(table.schema ?? "public")).\(Self.quoted(table.name))"
                    return "SELECT \(index), count(*) FROM ONLY \(name);"
                }).joined(separator: "\n")
                let output = try await shell.run(script, arguments: [database, sql],
                                                 what: "counting the rows of database \(database)")
                exists = exists || output.contains("database exists")
                counted.merge(DrillSupport.counts(output, separator: "|")) { $1 }
            }
            if exists { found.databases.append(database) }
        }
        found.tables = DrillSupport.tables(expected, counted)
        return found
    }

    /// A PostgreSQL identifier in double quotes.
    static func quoted(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension MariaDBDumpStrategy: DrillStrategy {
    public func drillEnvironment(password: String) -> [String] {
        ["MARIADB_ROOT_PASSWORD=\(password)", "MYSQL_ROOT_PASSWORD=\(password)"]
    }

    public func waitUntilReady(_ container: ContainerDetails, docker: any DockerEngine, timeout: Duration)
        async throws
    {
        // The image's entrypoint initialises with a temporary server, then execs mariadbd (mysqld) as PID 1.
        try await DrillSupport.waitUntilReady(container, docker: docker, timeout: timeout, server: "MariaDB",
            probe: Self.rootLogin + #"""
                case "$(cat /proc/1/comm)" in mariadbd|mysqld) ;; *) echo "still initialising" >&2; exit 1;; esac
                client=mariadb; command -v mariadb >/dev/null 2>&1 || client=mysql
                "$client" --user=root -e 'SELECT 1' >/dev/null
                """#)
    }

    public func replayedContents(of expected: DumpContents, in container: ContainerDetails,
                                 docker: any DockerEngine) async throws -> DumpContents
    {
        let shell = ContainerShell(docker: docker, container: container, place: "drill container \(container.name)")
        // After the replay root has the dump's password; root@localhost also logs in by unix socket in the
        // official images, which an exec as the OS root uses.
        let script = Self.rootLogin + #"""
            client=mariadb; command -v mariadb >/dev/null 2>&1 || client=mysql
            "$client" --user=root -e 'SELECT 1' >/dev/null 2>&1 || unset MYSQL_PWD
            printf '%s\n' "$1" | "$client" --user=root -N -B --force 2>/dev/null || true
            """#
        var found = DumpContents()
        var counted: [Int: Int64] = [:]
        let databases = expected.databases.enumerated().map { index, name in
            "SELECT CONCAT('database ', \(index)) FROM information_schema.schemata "
                + "WHERE schema_name = CONVERT(X'\(DrillSupport.hex(name))' USING utf8mb4);"
        }
        let output = try await shell.run(script, arguments: [databases.joined(separator: "\n")],
                                         what: "listing the databases")
        let present = Set(output.split(whereSeparator: \.isNewline).compactMap { line -> Int? in
            line.hasPrefix("database ") ? Int(line.dropFirst("database ".count)) : nil
        })
        found.databases = expected.databases.enumerated().filter { present.contains($0.offset) }.map(\.element)
        for batch in DrillSupport.batches(Array(expected.tables.enumerated())) {
            let sql = batch.map { index, table in
                "SELECT \(index), COUNT(*) FROM \(Self.quoted(table.database)).\(Self.quoted(table.name));"
            }.joined(separator: "\n")
            let output = try await shell.run(script, arguments: [sql], what: "counting the rows of the tables")
            counted.merge(DrillSupport.counts(output, separator: "\t")) { $1 }
        }
        found.tables = DrillSupport.tables(expected, counted)
        return found
    }

    /// The `mysql` tables the server writes itself: persistent statistics (InnoDB's and the engine-independent
    /// ones, refreshed by the server after a load), the log tables, GTID positions and the transaction registry.
    static let serverMaintained: Set<String> = [
        "innodb_index_stats", "innodb_table_stats", "column_stats", "index_stats", "table_stats", "general_log",
        "slow_log", "gtid_slave_pos", "transaction_registry",
    ]

    public func comparesRows(of table: DumpContents.Table) -> Bool {
        !(table.database == "mysql" && Self.serverMaintained.contains(table.name))
    }

    /// A MariaDB identifier in backquotes.
    static func quoted(_ name: String) -> String {
        "`" + name.replacingOccurrences(of: "`", with: "``") + "`"
    }
}

extension Array {
    /// `self`, or `fallback` when `self` is empty.
    fileprivate func ifEmpty(_ fallback: Self) -> Self { isEmpty ? fallback : self }
}
