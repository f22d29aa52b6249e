// dynalite (node_modules, from `npm ci`) on the given host and port, with tables ready at once.
//
//   node dynalite_server.js ROOT HOST PORT
//
// dynalite 4.0.0 rethrows a request's 'error' event (index.js, httpHandler), so one client
// that drops its connection mid-request (a flush killed by a timeout, a crash test) ends the
// emulator for every later test. A dropped connection only ends that request; anything else
// still ends the process, as before.
'use strict'

const path = require('path')
const [root, host, port] = process.argv.slice(2)
const dynalite = require(path.join(root, 'node_modules', 'dynalite'))

process.on('uncaughtException', (err) => {
  if (err && err.code === 'ECONNRESET') {
    console.error('dynalite: a client dropped its connection mid-request (%s); serving on', err.message)
    return
  }
  console.error(err)
  process.exit(1)
})

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(Number(port), host, () => {
  console.log('Dynalite listening at: http://%s:%s', host, server.address().port)
})
