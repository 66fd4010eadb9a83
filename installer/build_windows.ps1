# Builds homefarm's Windows setup on a Windows machine with Python 3.11+ and Inno Setup 6 or 7.
#   powershell -ExecutionPolicy Bypass -File installer\build_windows.ps1
# Output: dist\homefarm\ (the onedir bundle) and dist\homefarm-<version>-setup.exe
# Signing (recommended: SmartScreen and Defender flag unsigned PyInstaller programs): set
#   HOMEFARM_SIGN_PFX (a code-signing certificate, .pfx) and HOMEFARM_SIGN_PASSWORD, and have signtool.exe
#   (Windows SDK) on PATH; the bundle's programs are signed, and Inno Setup signs the setup, the temporary
#   copies it unpacks and unins000.exe through its SignTool (Defender's prevalence rule blocks unsigned ones).
# HOMEFARM_BUILD_BOOTLOADER=1 compiles PyInstaller's bootloader from source (needs MSVC, as on GitHub's
#   runners): the prebuilt one is shared by every PyInstaller program, malware included, and antivirus
#   engines flag onedir bundles built with it as Wacatac.B!ml (pyinstaller#5854). CI sets it.
$ErrorActionPreference = "Stop"

# A native program's failure does not stop PowerShell: check each one, or an old build gets packaged.
function Invoke-Checked {
    param([string]$What, [scriptblock]$Command)
    & $Command
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)" }
}

function Invoke-Sign {
    param([string[]]$Files)
    if (-not $env:HOMEFARM_SIGN_PFX) { Write-Warning "not signed: HOMEFARM_SIGN_PFX is not set"; return }
    Invoke-Checked "signing" { signtool sign /fd SHA256 /td SHA256 /tr http://timestamp.digicert.com `
        /f $env:HOMEFARM_SIGN_PFX /p $env:HOMEFARM_SIGN_PASSWORD $Files }
}
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

Remove-Item -Recurse -Force dist\homefarm, build\pyinstaller -ErrorAction SilentlyContinue
Invoke-Checked "venv" { python -m venv .venv-build }
Invoke-Checked "pip" { .\.venv-build\Scripts\python -m pip install --upgrade pip }
if ($env:HOMEFARM_BUILD_BOOTLOADER -eq "1") {
    # pip builds PyInstaller from its sdist, which compiles the bootloader with the compiler it finds.
    $env:PYINSTALLER_COMPILE_BOOTLOADER = "1"
    Invoke-Checked "install" { .\.venv-build\Scripts\python -m pip install --no-binary pyinstaller "pyinstaller>=6.5" }
}
Invoke-Checked "install" { .\.venv-build\Scripts\python -m pip install ".[tray]" "pyinstaller>=6.5" pillow }
$Version = .\.venv-build\Scripts\python -c "import worker_app; print(worker_app.__version__)"
if ($LASTEXITCODE -ne 0) { throw "reading the version failed" }

# The .ico the exe and the setup show, from the PNG icons.
Invoke-Checked "icon" { .\.venv-build\Scripts\python -c "from PIL import Image; Image.open('resources/icons/waiting-64.png').resize((256, 256)).save('resources/icons/waiting.ico', sizes=[(16,16),(20,20),(24,24),(32,32),(48,48),(256,256)])" }

# Version information shown in Explorer's file properties.
New-Item -ItemType Directory -Force build | Out-Null
$parts = ($Version.Split(".") + @("0", "0", "0"))[0..3] -join ", "
@"
VSVersionInfo(
  ffi=FixedFileInfo(filevers=($parts), prodvers=($parts)),
  kids=[StringFileInfo([StringTable('040904B0', [
    StringStruct('CompanyName', 'homefarm'), StringStruct('FileDescription', 'homefarm render worker'),
    StringStruct('FileVersion', '$Version'), StringStruct('ProductName', 'homefarm'),
    StringStruct('ProductVersion', '$Version')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])]
)
"@ | Set-Content -Encoding UTF8 build\version_info.txt

Invoke-Checked "PyInstaller" { .\.venv-build\Scripts\python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller installer\homefarm.spec }
Invoke-Sign @("dist\homefarm\homefarm.exe", "dist\homefarm\homefarm-cli.exe")

# Inno Setup 7 or 6, installed for all users or for this one; the script itself refuses one older than 6.3.
$Iscc = @(7, 6) | ForEach-Object { "${env:ProgramFiles(x86)}\Inno Setup $_\ISCC.exe", "$env:ProgramFiles\Inno Setup $_\ISCC.exe",
    "$env:LOCALAPPDATA\Programs\Inno Setup $_\ISCC.exe" } | Where-Object { Test-Path $_ } | Select-Object -First 1
if (-not $Iscc) { throw "Inno Setup 6 or 7 was not found (ISCC.exe): install it from https://jrsoftware.org/isinfo.php" }
$IsccArgs = @("/DAppVersion=$Version")
if ($env:HOMEFARM_SIGN_PFX) {
    # SignTool: Inno Setup signs the setup, its uninstaller and what it unpacks with this command ($f: the file).
    $IsccArgs += @("/DSign", "/Shomefarm=signtool sign /fd SHA256 /td SHA256 /tr http://timestamp.digicert.com /f `$q$env:HOMEFARM_SIGN_PFX`$q /p `$q$env:HOMEFARM_SIGN_PASSWORD`$q `$f")
}
Invoke-Checked "Inno Setup" { & $Iscc @IsccArgs installer\homefarm.iss }
Write-Host "Built dist\homefarm-$Version-setup.exe"
