# Run-Conform NAME EXE ARGS...: run EXE directly, output to $env:OUT\NAME.log.
# If BITS/DO refuse the session with 0x800704DD (ERROR_NOT_LOGGED_ON: the
# owner has no interactive logon), run it again from a scheduled task as
# SYSTEM, a service account, which BITS serves. Returns the exit code.
function Run-Conform([string]$Name, [string]$Exe, [string[]]$Arguments) {
  New-Item -ItemType Directory -Force -Path $env:OUT | Out-Null
  $log = Join-Path $env:OUT "$Name.log"
  & $Exe @Arguments *> $log
  $rc = $LASTEXITCODE
  Get-Content $log | Out-Host
  if ($rc -eq 0 -or -not (Select-String -Path $log -Pattern '0x800704DD' -Quiet)) { return $rc }

  Write-Host "::warning::$Name got 0x800704DD (no interactive logon); retrying as SYSTEM via a scheduled task"
  $taskLog = Join-Path $env:OUT "$Name.task.log"
  $quoted = ($Arguments | ForEach-Object { '"' + $_ + '"' }) -join ' '
  # /v:on so that !ERRORLEVEL! is read after the program ran.
  $cmd = "/v:on /c `"`"$Exe`" $quoted > `"$taskLog`" 2>&1 & echo !ERRORLEVEL! > `"$taskLog.rc`"`""
  $task = "bitsim-$Name-$PID"
  $action = New-ScheduledTaskAction -Execute 'cmd.exe' -Argument $cmd -WorkingDirectory $env:GITHUB_WORKSPACE
  $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
  Register-ScheduledTask -TaskName $task -Action $action -Principal $principal -Force | Out-Null
  try {
    Start-ScheduledTask -TaskName $task
    $deadline = (Get-Date).AddMinutes(40)
    do { Start-Sleep -Seconds 2 } while ((Get-ScheduledTask -TaskName $task).State -eq 'Running' -and (Get-Date) -lt $deadline)
  } finally {
    Stop-ScheduledTask -TaskName $task -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $task -Confirm:$false
  }
  Get-Content $taskLog -ErrorAction SilentlyContinue | Out-Host
  $rcText = Get-Content "$taskLog.rc" -ErrorAction SilentlyContinue | Select-Object -First 1
  if ($null -eq $rcText) { return 1 }
  return [int]$rcText.Trim()
}
