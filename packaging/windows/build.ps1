# Build FaceMend for Windows: PyInstaller one-dir bundle + NSIS installer.
# Run on Windows 10/11 x64 from any folder (PyInstaller cannot cross-build):
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
#
# Needs: Python 3.11 (the `py` launcher) and NSIS 3 (makensis on PATH or in
# its default folder; `winget install NSIS.NSIS`). Output:
#   dist\facemend\                          one-dir bundle (facemend.exe windowed, facemend-cli.exe console)
#   dist\FaceMend-<version>-setup.exe      per-user installer
param(
    [switch]$SkipBundle  # reuse dist\facemend
)
$ErrorActionPreference = "Stop"
$Root = Resolve-Path (Join-Path $PSScriptRoot "..\..")
Set-Location $Root

$Venv = Join-Path $Root ".venv"
$Py = Join-Path $Venv "Scripts\python.exe"
if (-not (Test-Path $Py)) {
    py -3.11 -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "Python 3.11 not found (install it from python.org; FaceMend needs 3.11)" }
}
& $Py -m pip install -q --disable-pip-version-check -e ".[package]"
if ($LASTEXITCODE -ne 0) { throw "pip install failed" }

$Version = (& $Py -c "import facemend; print(facemend.__version__)").Trim()
$Icons = Join-Path $Root "build\packaging\icons"
& $Py packaging\make_icons.py $Icons | Out-Null

$sw = [Diagnostics.Stopwatch]::StartNew()
if (-not $SkipBundle) {
    $env:FACEMEND_ICON_DIR = $Icons
    & $Py -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build\pyinstaller packaging\facemend.spec
    if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
}

# The frozen app must repair a face before it is wrapped in an installer.
& dist\facemend\facemend-cli.exe --self-test
if ($LASTEXITCODE -ne 0) { throw "frozen self-test failed" }

$MakeNsis = (Get-Command makensis -ErrorAction SilentlyContinue).Source
if (-not $MakeNsis) { $MakeNsis = Join-Path ${env:ProgramFiles(x86)} "NSIS\makensis.exe" }
if (-not (Test-Path $MakeNsis)) { throw "makensis not found: install NSIS 3 (winget install NSIS.NSIS)" }
$Setup = Join-Path $Root "dist\FaceMend-$Version-setup.exe"
& $MakeNsis /V2 "/DVERSION=$Version" "/DDIST=$Root\dist\facemend" "/DICON=$Icons\facemend.ico" "/DOUTFILE=$Setup" packaging\windows\facemend.nsi
if ($LASTEXITCODE -ne 0) { throw "makensis failed" }

$BundleMB = [math]::Round(((Get-ChildItem dist\facemend -Recurse -File | Measure-Object Length -Sum).Sum) / 1MB)
$SetupMB = [math]::Round((Get-Item $Setup).Length / 1MB)
Write-Host "build: bundle $BundleMB MB, installer $SetupMB MB ($Setup), $([math]::Round($sw.Elapsed.TotalSeconds)) s"
