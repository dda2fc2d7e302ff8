// Package layers holds the test that keeps the module's imports pointing
// down: demo → handoff and web; handoff knows no demo, web or HTTP; web
// knows no TCP repair; the server agent (demo/node) and the services know
// no console; the shared leaf helpers under internal/ import nothing of
// the project above them.
package layers
