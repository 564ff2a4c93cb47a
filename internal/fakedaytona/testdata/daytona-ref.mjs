import { Daytona } from '@daytonaio/sdk'
const daytona = new Daytona()
const sbx = await daytona.create({ language: 'typescript' }, { timeout: 30 })
console.log('created', sbx.id)
await sbx.fs.uploadFile(Buffer.from('hi from the reference client\n'), 'hello.txt')
await sbx.process.createSession('ref')
const cmd = await sbx.process.executeSessionCommand('ref', { command: 'cat hello.txt; echo exit-check >&2', runAsync: true })
let info
for (let i = 0; i < 100; i++) {
  info = await sbx.process.getSessionCommand('ref', cmd.cmdId)
  if (info.exitCode !== undefined && info.exitCode !== null) break
  await new Promise(r => setTimeout(r, 100))
}
const logs = await sbx.process.getSessionCommandLogs('ref', cmd.cmdId)
console.log('exit', info.exitCode, 'logs:', JSON.stringify(logs.output ?? logs))
const back = await sbx.fs.downloadFile('hello.txt')
console.log('read:', JSON.stringify(back.toString()))
await sbx.delete()
console.log('deleted')
