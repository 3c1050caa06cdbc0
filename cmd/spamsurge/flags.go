package main

import (
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/spamsurge/spamsurge/config"
)

// The flags the commands that read the daemon's config share.

// configFlag is --config.
type configFlag struct{ path string }

func addConfigFlag(fs *flag.FlagSet) *configFlag {
	c := &configFlag{}
	fs.StringVar(&c.path, "config", "", "YAML config `file` (default: built-in defaults)")
	return c
}

// load reads the file --config names, or the defaults without it. A config
// that does not load is a usage error (exit status 2, like a bad flag).
func (c *configFlag) load() (config.Config, error) {
	cfg, err := config.Load(c.path)
	if err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// logFlags are --log-format and --log-level.
type logFlags struct {
	format, level string
}

// addLogFlags adds the log flags; level is --log-level's default (replay
// is quieter than serve).
func addLogFlags(fs *flag.FlagSet, level string) *logFlags {
	f := &logFlags{}
	fs.StringVar(&f.format, "log-format", "console", "log format: console (for humans) or json (for machines)")
	fs.StringVar(&f.level, "log-level", level, "log level: debug, info, warn, error")
	return f
}

// logger builds the process logger writing to w; a bad flag value is a
// usage error. Log lines never carry plaintext addresses; components log
// hash ids or counts.
func (f *logFlags) logger(w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(f.level)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch f.format {
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, usageError{fmt.Errorf("--log-format: %q is not console or json", f.format)}
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}
