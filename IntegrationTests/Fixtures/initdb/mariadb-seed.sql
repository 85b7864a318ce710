CREATE TABLE stackvault_seed (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL) DEFAULT CHARSET=utf8mb4;
INSERT INTO stackvault_seed VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma ünïcode');
