; Inno Setup script: a per-user homefarm setup for Windows, no administrator rights needed.
; Built by installer/build_windows.ps1 from the PyInstaller bundle in dist\homefarm.
; tests/test_installer.py keeps the names, paths and version here consistent with the app.

#if VER < EncodeVer(6, 3, 0)
  #error Inno Setup 6.3 or newer is needed (ArchitecturesAllowed=x64compatible and the 6.3 [Setup] names)
#endif

#define AppName "homefarm"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppExe "homefarm.exe"
#define CliExe "homefarm-cli.exe"
#define RunKey "Software\Microsoft\Windows\CurrentVersion\Run"
#define RunValue "homefarm"
; The tray holds this named mutex while it runs (worker_app/tray/single.py): setup and uninstall wait for it.
#define TrayMutex "homefarm-tray"

[Setup]
AppId={{7C1E4B52-8B0B-4F7C-9D2A-5E3F8A6B1C90}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=homefarm
AppPublisherURL=https://homefarm.dev
VersionInfoVersion={#AppVersion}
VersionInfoDescription=homefarm render worker setup
; Per user: no UAC prompt; {autopf} is then %LOCALAPPDATA%\Programs.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
UninstallDisplayIcon={app}\{#AppExe}
OutputDir=..\dist
OutputBaseFilename=homefarm-{#AppVersion}-setup
SetupIconFile=..\resources\icons\waiting.ico
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
CloseApplications=yes
#ifdef Sign
; Signs the setup, the copies of itself it unpacks and unins000.exe with the "homefarm" sign tool that
; build_windows.ps1 defines on ISCC's command line (/Shomefarm=signtool ...) when a certificate is given.
SignTool=homefarm
SignedUninstaller=yes
#endif
AppMutex={#TrayMutex}

[InstallDelete]
; An upgrade must not keep libraries of the bundle it replaces: the new bundle brings its own.
Type: filesandordirs; Name: "{app}\_internal"

[Tasks]
; Per user only: an "all users" install runs elevated, and HKCU would then be the administrator's.
Name: "startatlogin"; Description: "Start homefarm when I sign in"; GroupDescription: "Options:"; Check: not IsAdminInstallMode
Name: "desktopicon"; Description: "Create a desktop shortcut"; GroupDescription: "Options:"; Flags: unchecked

[Files]
Source: "..\dist\homefarm\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; The same Run value the app's own "Start at login" writes (worker_app/system/autostart.py): quoted path.
Root: HKCU; Subkey: "{#RunKey}"; ValueType: string; ValueName: "{#RunValue}"; ValueData: """{app}\{#AppExe}"""; Tasks: startatlogin; Check: not IsAdminInstallMode; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Description: "Start homefarm now"; Flags: nowait postinstall skipifsilent

[UninstallRun]
Filename: "{cmd}"; Parameters: "/C taskkill /IM {#AppExe} /F"; Flags: runhidden; RunOnceId: "StopTray"
Filename: "{cmd}"; Parameters: "/C taskkill /IM {#CliExe} /F"; Flags: runhidden; RunOnceId: "StopCli"

[Code]
var
  RemoveData: Boolean;

// The Run value is removed even when the app itself (not this setup) wrote it. The owner's settings,
// statistics, unsent results and the worker token in Credential Manager stay unless they ask.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
  ResultCode: Integer;
begin
  DataDir := ExpandConstant('{localappdata}\{#AppName}');
  if CurUninstallStep = usUninstall then
  begin
    RemoveData := DirExists(DataDir) and (UninstallSilent = False) and
      (MsgBox('Also delete your homefarm settings, statistics, unsent results and the sign-in kept in ' +
              'Windows Credential Manager?', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES);
    // While the programs are still here: the token leaves Credential Manager through the app itself.
    if RemoveData then
      Exec(ExpandConstant('{app}\{#CliExe}'), 'logout', '', SW_HIDE, ewWaitUntilTerminated, ResultCode);
  end;
  if CurUninstallStep = usPostUninstall then
  begin
    RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValue}');
    if RemoveData then
      DelTree(DataDir, True, True, True);
  end;
end;
