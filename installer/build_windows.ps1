# Builds homefarm's Windows setup on a Windows machine with Python 3.11+ and Inno Setup 6.
#   powershell -ExecutionPolicy Bypass -File installer\build_windows.ps1
# Output: dist\homefarm\ (the onedir bundle) and dist\homefarm-<version>-setup.exe
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

python -m venv .venv-build
.\.venv-build\Scripts\python -m pip install --upgrade pip
.\.venv-build\Scripts\python -m pip install . "pyinstaller>=6.5" pillow
$Version = .\.venv-build\Scripts\python -c "import worker_app; print(worker_app.__version__)"

# The .ico the exe and the setup show, from the PNG icons.
.\.venv-build\Scripts\python -c "from PIL import Image; Image.open('resources/icons/waiting-64.png').save('resources/icons/waiting.ico', sizes=[(16,16),(32,32),(64,64)])"

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

.\.venv-build\Scripts\python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller installer\homefarm.spec

$Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (-not (Test-Path $Iscc)) { $Iscc = "$env:LOCALAPPDATA\Programs\Inno Setup 6\ISCC.exe" }
& $Iscc "/DAppVersion=$Version" installer\homefarm.iss
Write-Host "Built dist\homefarm-$Version-setup.exe"
