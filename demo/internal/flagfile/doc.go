// Package flagfile lets a command take its flags from a file as well as
// from the command line: `--config FILE` names a file of `name = value`
// lines, one flag each, and a flag given on the command line overrides the
// file. The format is small on purpose (no sections, no nesting), so a
// shell script can write it and a person can read it:
//
//	# server A of the VM lab
//	name  = a
//	addr  = 192.168.56.11
//	peer  = b=192.168.56.12
//	hold  = true
//
// Blank lines and lines starting with # are ignored; a value may be quoted
// ("...", Go syntax) to keep surrounding spaces. An unknown name, a name
// given twice or a bad value is an error that names the file and line.
package flagfile
