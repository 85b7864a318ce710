import StackVaultCore
import StackVaultStrategies
import StackVaultTestKit
import Testing

/// `DumpScanner` on excerpts of real `pg_dumpall` (PostgreSQL 15) and `mariadb-dump` (MariaDB 10.11) output, fed
/// whole and in every chunk size up to 64 bytes (a statement head, a quote or an escape split across writes).
@Suite struct DumpScannerTests {
    static func scan(_ dialect: DumpScanner.Dialect, _ text: String, chunk: Int? = nil) throws -> (DumpContents, [UInt8]) {
        let out = CollectingSink()
        let scanner = DumpScanner(dialect, downstream: out)
        let bytes = Array(text.utf8)
        let size = chunk ?? max(bytes.count, 1)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + size, bytes.count)
            try bytes[offset..<end].withUnsafeBytes { try scanner.write($0) }
            offset = end
        }
        return (scanner.contents, out.bytes)
    }

    /// The same contents whatever the write sizes, and every byte passed on unchanged.
    static func scanInChunks(_ dialect: DumpScanner.Dialect, _ text: String) throws -> DumpContents {
        let (whole, passed) = try scan(dialect, text)
        #expect(passed == Array(text.utf8))
        for chunk in 1...64 {
            let (pieces, _) = try scan(dialect, text, chunk: chunk)
            #expect(pieces == whole, "chunk size \(chunk)")
        }
        return whole
    }

    static let postgres = #"""
        --
        -- PostgreSQL database cluster dump
        --
        CREATE ROLE postgres;
        \connect template1
        --
        -- PostgreSQL database dump
        --
        CREATE DATABASE "it's ""x""" WITH TEMPLATE = template0 ENCODING = 'UTF8';
        \connect -reuse-previous=on "dbname='it\'s ""x""'"
        CREATE TABLE public."Big""T" (a text);
        COPY public."Big""T" (a) FROM stdin;
        yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy
        yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy
        \.

        CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql AS $$SELECT 1$$;
        \connect -reuse-previous=on "dbname='my db'"
        COPY public.e (a) FROM stdin;
        \.

        COPY s."T x" (a, b) FROM stdin;
        1	line\nbreak
        2	\\.
        3	\N
        \.

        \connect postgres
        COPY public.pgbench_branches (bid, bbalance, filler) FROM stdin;
        1	0	\N
        \.

        --
        -- PostgreSQL database cluster dump complete
        --

        """#

    @Test func postgresDatabasesAndRows() throws {
        let contents = try Self.scanInChunks(.postgres, Self.postgres)
        #expect(contents.databases == ["template1", "it's \"x\"", "my db", "postgres"])
        #expect(contents.tables == [
            .init(database: "it's \"x\"", schema: "public", name: "Big\"T", rows: 2),
            .init(database: "my db", schema: "public", name: "e", rows: 0),
            .init(database: "my db", schema: "s", name: "T x", rows: 3),
            .init(database: "postgres", schema: "public", name: "pgbench_branches", rows: 1),
        ])
        #expect(contents.totalRows == 6)
    }

    @Test func aCopyLineLongerThanTheHeadIsStillACopy() throws {
        let columns = (0..<200).map { "\"column_with_a_long_name_\($0)\"" }.joined(separator: ", ")
        let text = "\\connect app\nCOPY public.wide (\(columns)) FROM stdin;\n1\n2\n\\.\n"
        let contents = try Self.scanInChunks(.postgres, text)
        #expect(contents.tables == [.init(database: "app", schema: "public", name: "wide", rows: 2)])
    }

    static let mariadb = #"""
        -- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
        CREATE DATABASE /*!32312 IF NOT EXISTS*/ `d2` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
        USE `d2`;
        DROP TABLE IF EXISTS `x`;
        CREATE TABLE `x` (
          `a` int(11) DEFAULT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
        LOCK TABLES `x` WRITE;
        INSERT INTO `x` VALUES
        (1),
        (2);
        INSERT INTO `x` VALUES (3),(4),(5);
        UNLOCK TABLES;
        DELIMITER ;;
        /*!50003 CREATE*/ /*!50020 DEFINER=`root`@`localhost`*/ /*!50003 PROCEDURE `p`()
        BEGIN
        INSERT INTO `x` VALUES (99),(98);
        END */ ;;
        DELIMITER ;
        CREATE DATABASE /*!32312 IF NOT EXISTS*/ `we``ird db`;
        USE `we``ird db`;
        CREATE TABLE `empty1` (
          `a` int(11) DEFAULT NULL
        );
        /*!50001 CREATE VIEW `v` AS SELECT 1 AS `a` */;
        CREATE TABLE `t``1` (
          `a` int(11) DEFAULT NULL, `b` text, `c` blob
        );
        INSERT INTO `t``1` VALUES
        (1,'it\'s (a) test),(',NULL),
        (2,'back\\slash \' q',0x28),
        (3,'semi;colon\nnewline',''),
        (4,'doubled ''quote'' ); (',"dq \" (");
        -- Dump completed on 2026-11-30  4:05:12

        """#

    @Test func mariadbDatabasesAndRows() throws {
        let contents = try Self.scanInChunks(.mariadb, Self.mariadb)
        #expect(contents.databases == ["d2", "we`ird db"])
        #expect(contents.tables == [
            .init(database: "d2", name: "x", rows: 5),
            .init(database: "we`ird db", name: "empty1", rows: 0),
            .init(database: "we`ird db", name: "t`1", rows: 4),
        ])
    }

    @Test func aDumpThatIsNeitherCountsNothingAndPassesEverythingOn() throws {
        let text = "just some text\n(with) 'quotes' and ; semicolons\nINSERT INTO x VALUES (1);\n"
        for dialect in [DumpScanner.Dialect.postgres, .mariadb] {
            let contents = try Self.scanInChunks(dialect, text)
            #expect(contents == DumpContents())
        }
    }
}
