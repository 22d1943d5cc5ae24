package store

import _ "github.com/mattn/go-sqlite3"
