import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { BrowserRouter, Link, Route, Routes } from 'react-router-dom'
import { Toaster } from 'sonner'
import * as Tooltip from '@radix-ui/react-tooltip'
import * as Toast from '@radix-ui/react-toast'
import Dashboard from './pages/Dashboard.tsx'
import Settings from './pages/Settings.tsx'
import Components from './pages/Components.tsx'

const queryClient = new QueryClient()

export default function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <Tooltip.Provider>
        <Toast.Provider>
          <BrowserRouter>
            <nav className="flex gap-4 p-4 border-b">
              <Link to="/">Dashboard</Link>
              <Link to="/settings">Settings</Link>
              <Link to="/components">Components</Link>
            </nav>
            <Routes>
              <Route path="/" element={<Dashboard />} />
              <Route path="/settings" element={<Settings />} />
              <Route path="/components" element={<Components />} />
            </Routes>
          </BrowserRouter>
          <Toast.Viewport />
        </Toast.Provider>
      </Tooltip.Provider>
      <Toaster />
    </QueryClientProvider>
  )
}
